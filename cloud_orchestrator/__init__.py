"""The cloud tier: model registry, fleet rollouts (push), pull-mode desired state and
the feedback store. Console script: ``edge-orchestrator`` (see docs/orchestrator.md)."""

__version__ = "0.1.0"
