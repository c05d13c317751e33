"""The cloud tier: model registry, fleet rollouts (push), pull-mode desired state and
the feedback store. Console script: ``edge-orchestrator`` (see docs/orchestrator.md)."""

from edge_contracts import __version__

__all__ = ["__version__"]
