"""Typed exceptions, one per gRPC status code, and the one place that maps to them.

Every call of :class:`~edge_client.EdgeClient` and
:class:`~edge_client.AsyncEdgeClient` raises a subclass of :class:`EdgeClientError`
instead of a bare ``grpc.RpcError``, so callers can write
``except edge_client.NotFound`` and read ``err.code`` / ``err.details``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from edge_contracts import retry_hint

__all__ = [
    "Aborted",
    "DeadlineExceeded",
    "EdgeClientError",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "error_for_status",
    "from_rpc_error",
    "translate_rpc_errors",
]

Metadata = retry_hint.Metadata

# The gateway sends the back-off hint under this key (one constant for both sides), and
# as a google.rpc.RetryInfo too; retry_hint.retry_after_ms reads either.
RETRY_AFTER_KEY = retry_hint.RETRY_AFTER_KEY


class EdgeClientError(Exception):
    """A call failed; ``code`` is the gRPC status, ``details`` the gateway's message."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: Metadata = ()
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code: grpc.StatusCode = code
        self.details: str = details
        self.trailing_metadata: Metadata = trailing_metadata


class InvalidArgument(EdgeClientError):
    """The request is wrong (bad image, wrong tensor shape); retrying will not help."""


class NotFound(EdgeClientError):
    """The model or version does not exist on the gateway."""


class Unavailable(EdgeClientError):
    """The gateway is unreachable, shutting down, or the model is (re)loading; retry later."""


class ResourceExhausted(EdgeClientError):
    """The gateway is overloaded or a quota was hit; ``retry_after_ms`` says when to retry."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: Metadata = ()
    ) -> None:
        super().__init__(code, details, trailing_metadata)
        self.retry_after_ms: int | None = retry_hint.retry_after_ms(trailing_metadata)


class DeadlineExceeded(EdgeClientError):
    """The call did not finish within its deadline."""


class FailedPrecondition(EdgeClientError):
    """The gateway's state does not allow the call (e.g. a version that is not loaded)."""


class Unauthenticated(EdgeClientError):
    """The call needs credentials (a management token) that were not sent."""


class PermissionDenied(EdgeClientError):
    """The credentials sent are not accepted."""


class Aborted(EdgeClientError):
    """The call conflicted with another one (e.g. an update in progress)."""


class Internal(EdgeClientError):
    """The gateway failed unexpectedly; the details are in its log."""


class Unknown(EdgeClientError):
    """UNKNOWN, or a status code this client has no dedicated exception for."""


_BY_CODE: dict[grpc.StatusCode, type[EdgeClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.INTERNAL: Internal,
}


def error_for_status(
    code: grpc.StatusCode, details: str, trailing_metadata: Metadata = ()
) -> EdgeClientError:
    """The typed exception for ``code`` (``Unknown`` for codes without their own class)."""
    return _BY_CODE.get(code, Unknown)(code, details, trailing_metadata)


def from_rpc_error(err: grpc.RpcError) -> EdgeClientError:
    """Map a sync or ``grpc.aio`` RpcError to its typed exception."""
    code = _call_value(err, "code")
    details = _call_value(err, "details")
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    if not isinstance(details, str):
        details = str(err) or "no details"
    return error_for_status(code, details, _metadata_pairs(_call_value(err, "trailing_metadata")))


@contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """Re-raise any ``grpc.RpcError`` in the block as an :class:`EdgeClientError`."""
    try:
        yield
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err


def _call_value(err: grpc.RpcError, name: str) -> Any:
    accessor = getattr(err, name, None)
    if not callable(accessor):
        return None
    try:
        return accessor()
    except Exception:  # a half-built error object must not hide the original failure
        return None


def _metadata_pairs(metadata: Iterable[Any] | None) -> Metadata:
    if metadata is None:
        return ()
    pairs: list[tuple[str, str | bytes]] = []
    for item in metadata:
        key, value = item[0], item[1]
        if isinstance(key, str) and isinstance(value, str | bytes):
            pairs.append((key, value))
    return tuple(pairs)
