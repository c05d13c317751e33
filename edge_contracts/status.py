"""The one table that turns a domain exception into the gRPC status a caller sees.

The contract errors (edge_contracts/errors.py) are entered here; each tier enters its
own error classes with ``register`` next to their definitions (edge_server/errors.py,
cloud_orchestrator/errors.py), so this module never imports a tier. Every servicer
applies the table through the boundary in edge_contracts/rpc_boundary.py.

Messages of our own exceptions are written for callers and pass through; anything
unexpected becomes INTERNAL with a generic message and a short correlation id, while
its traceback goes to the log under the same id.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import grpc

from edge_contracts.errors import BundleError, ManifestError
from edge_contracts.retry_hint import RETRY_AFTER_KEY, Metadata, hint_metadata

__all__ = [
    "RETRY_AFTER_KEY",
    "RpcStatus",
    "code_for",
    "register",
    "registered",
    "status_for",
]

logger = logging.getLogger(__name__)

_CODES: dict[type[BaseException], grpc.StatusCode] = {
    ManifestError: grpc.StatusCode.FAILED_PRECONDITION,
    BundleError: grpc.StatusCode.FAILED_PRECONDITION,
}


def register(codes: dict[type[BaseException], grpc.StatusCode]) -> None:
    """Enter a tier's error classes; a class registered twice must keep its code."""
    for kind, code in codes.items():
        known = _CODES.setdefault(kind, code)
        if known is not code:
            raise ValueError(f"{kind.__name__} is already mapped to {known.name}")


def registered() -> dict[type[BaseException], grpc.StatusCode]:
    """A copy of the table (for tests and documentation)."""
    return dict(_CODES)


def _known_code(exc: BaseException) -> grpc.StatusCode | None:
    # The most specific registered class wins (IntegrityError under BundleError).
    for kind in type(exc).__mro__:
        code = _CODES.get(kind)
        if code is not None:
            return code
    return None


def code_for(exc: BaseException) -> grpc.StatusCode:
    """The code ``exc`` will leave with; INTERNAL when it is not a known domain error."""
    return _known_code(exc) or grpc.StatusCode.INTERNAL


@dataclass(frozen=True)
class RpcStatus:
    code: grpc.StatusCode
    message: str
    # Text items and "-bin" ones (bytes), e.g. the retry hint (edge_contracts/retry_hint.py).
    trailing_metadata: Metadata = ()


def status_for(exc: BaseException) -> RpcStatus:
    """The status a caller sees for ``exc``; logs the traceback of an unexpected one."""
    code = _known_code(exc)
    if code is None:
        correlation = uuid.uuid4().hex[:12]
        logger.error(
            "unexpected error while handling a call [correlation id %s]",
            correlation,
            exc_info=exc,
        )
        return RpcStatus(
            grpc.StatusCode.INTERNAL,
            f"internal error (correlation id {correlation}); it has been logged",
        )
    # Duck-typed so that this module need not know the gateway's Overloaded.
    retry_after_ms = getattr(exc, "retry_after_ms", None)
    message = str(exc)
    metadata: Metadata = ()
    if isinstance(retry_after_ms, int) and not isinstance(retry_after_ms, bool):
        metadata = hint_metadata(code, message, retry_after_ms)
    return RpcStatus(code, message, metadata)
