"""Domain exceptions of the orchestrator. Only ``cloud_orchestrator.grpc.status_mapping``
turns them into gRPC status codes; the CLI prints their messages."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class NotFound(OrchestratorError):
    """No such model, version, gateway or rollout."""


class Conflict(OrchestratorError):
    """The thing exists already (a version published twice, a gateway id in use)."""


class InvalidRequest(OrchestratorError):
    """A selector, strategy, address or argument the orchestrator cannot use."""


class Unauthenticated(OrchestratorError):
    """A gateway called without the fleet token."""


class BundleRefused(OrchestratorError):
    """A bundle failed verification (signature, hashes, format) and was not published."""


class GatewayError(OrchestratorError):
    """A gateway could not be reached or refused a management call."""


class LeaseLost(OrchestratorError):
    """Another orchestrator owns the rollout now (this one's lease expired)."""
