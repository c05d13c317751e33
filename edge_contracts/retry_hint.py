"""The back-off hint of a refusal, written and read in one place.

A refusal that knows when to come back (the gateway's Overloaded, edge_server/errors.py)
leaves with two trailing-metadata items carrying the same number of milliseconds:

* ``grpc-status-details-bin``: a serialized ``google.rpc.Status`` (the call's own code
  and message) whose ``details`` hold a ``google.rpc.RetryInfo``. This is gRPC's rich
  error model, what ``grpc_status.rpc_status.to_status`` builds, so any gRPC client can
  read it without knowing this project.
* ``retry-after-ms``: the plain decimal the gateway sent before, kept for clients that
  read only it (and what the HAProxy front, deploy/haproxy/busy.http, still sends alone).

``hint_metadata`` builds both (edge_contracts/status.py calls it for every error that
leaves a servicer); ``retry_after_ms`` reads them back, RetryInfo first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "RETRY_AFTER_KEY",
    "STATUS_DETAILS_KEY",
    "Metadata",
    "hint_metadata",
    "retry_after_ms",
]

# The plain key of the hint (milliseconds, decimal); edge_client reads the same constant.
RETRY_AFTER_KEY = "retry-after-ms"
# Where gRPC's rich error model travels (the "-bin" suffix makes the value raw bytes).
STATUS_DETAILS_KEY = "grpc-status-details-bin"

Metadata = tuple[tuple[str, str | bytes], ...]

_RETRY_INFO = error_details_pb2.RetryInfo.DESCRIPTOR
_NANOS_PER_MS = 1_000_000


def hint_metadata(code: grpc.StatusCode, message: str, retry_after_ms: int) -> Metadata:
    """The trailing metadata announcing ``retry_after_ms`` for a call ending with
    ``code`` and ``message``. The Status inside repeats both because grpc rejects a
    ``grpc-status-details-bin`` that disagrees with the call's own status."""
    delay_ms = max(0, retry_after_ms)
    seconds, millis = divmod(delay_ms, 1000)
    retry_info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=seconds, nanos=millis * _NANOS_PER_MS)
    )
    rich = status_pb2.Status(code=code.value[0], message=message)
    rich.details.add().Pack(retry_info)
    details: bytes = rich.SerializeToString()
    return ((RETRY_AFTER_KEY, str(delay_ms)), (STATUS_DETAILS_KEY, details))


def retry_after_ms(trailing_metadata: Iterable[Any] | None) -> int | None:
    """The hint in ``trailing_metadata`` (a call's ``trailing_metadata()``, sync or
    grpc.aio, or pairs), in milliseconds: the RetryInfo of ``grpc-status-details-bin``
    when there is a valid one, else ``retry-after-ms``; None when neither holds a
    non-negative number. Malformed values are ignored, never raised: the caller is
    already handling a failed call."""
    details: bytes | None = None
    plain: str | None = None
    try:
        items = list(trailing_metadata or ())
    except TypeError:  # not metadata at all
        return None
    for item in items:
        try:
            key, value = item[0], item[1]
        except (TypeError, IndexError, KeyError):
            continue
        if not isinstance(key, str):
            continue
        key = key.lower()
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes) and details is None:
            details = value
        elif key == RETRY_AFTER_KEY and plain is None:
            if isinstance(value, bytes):
                value = value.decode("ascii", "replace")
            if isinstance(value, str):
                plain = value
    hint = _from_details(details) if details is not None else None
    return hint if hint is not None else _from_text(plain)


def _from_details(details: bytes) -> int | None:
    try:
        rich = status_pb2.Status.FromString(details)
        for detail in rich.details:
            if detail.Is(_RETRY_INFO):
                retry_info = error_details_pb2.RetryInfo()
                detail.Unpack(retry_info)
                seconds = int(retry_info.retry_delay.seconds)
                nanos = int(retry_info.retry_delay.nanos)
                if seconds < 0 or nanos < 0:
                    return None
                # Rounded up: waiting a little longer than asked is never early.
                return seconds * 1000 + -(-nanos // _NANOS_PER_MS)
    except Exception:  # DecodeError and friends: garbage bytes are no hint
        return None
    return None


def _from_text(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None
