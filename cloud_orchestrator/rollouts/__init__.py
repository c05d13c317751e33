"""Rollouts: wave planning, the persisted rollout state, the runner that drives gateways."""
