"""Feedback: batches, aggregates and hard examples from gateways, and why none arrived."""
