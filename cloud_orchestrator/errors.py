"""Domain exceptions of the orchestrator and, at the end, the gRPC code of each (entered
into the one status table, edge_contracts/status.py); the CLI prints their messages."""

from __future__ import annotations

import grpc

from edge_contracts import status


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class NotFound(OrchestratorError):
    """No such model, version, gateway or rollout."""


class Conflict(OrchestratorError):
    """The thing exists already (a version published twice, a gateway id in use)."""


class InvalidRequest(OrchestratorError):
    """A selector, strategy, address or argument the orchestrator cannot use."""


class Unauthenticated(OrchestratorError):
    """A gateway called without a credential, or with one this orchestrator never issued."""


class CredentialRefused(OrchestratorError):
    """A known credential may not do this: another gateway's id, pending admission,
    rejected, revoked, or an enrollment token that is revoked or used up."""


class LimitReached(OrchestratorError):
    """A gateway called too often or stored too much; ``retry_after_ms`` says when it may
    try again (sent as the retry hint by edge_contracts/status.py)."""

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = max(1, int(retry_after_ms))


class BundleRefused(OrchestratorError):
    """A bundle failed verification (signature, hashes, format) and was not published."""


class GatewayError(OrchestratorError):
    """A gateway could not be reached or refused a management call."""


class ReaderStalled(OrchestratorError):
    """A FetchModel caller stopped reading: the call ends rather than keep a slot of the
    shared fetch budget (registry/fetch_budget.py); the gateway resumes from its offset."""


class LeaseLost(OrchestratorError):
    """Another orchestrator owns the rollout now (this one's lease expired)."""


# The orchestrator's rows of the status table; LeaseLost never reaches a caller.
status.register(
    {
        NotFound: grpc.StatusCode.NOT_FOUND,
        InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
        Conflict: grpc.StatusCode.ALREADY_EXISTS,
        Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
        CredentialRefused: grpc.StatusCode.PERMISSION_DENIED,
        LimitReached: grpc.StatusCode.RESOURCE_EXHAUSTED,
        BundleRefused: grpc.StatusCode.FAILED_PRECONDITION,
        GatewayError: grpc.StatusCode.UNAVAILABLE,
        ReaderStalled: grpc.StatusCode.UNAVAILABLE,
    }
)
