"""The loop, closed: hard examples from a gateway back into training, and the fine-tuned
model back out to the gateway through the same signed, evidence-gated path as any release.

Run from the repository root: ``python -m examples.loop`` (``make loop-demo``);
docs/loop.md walks through it. Not part of the wheel: it drives the shipped commands
(``edge-orchestrator``, ``edge-server``, ``model-tools``) the way an operator would.
"""
