"""Every error an HTTP route answers with: the status table's code -> an HTTP status.

The one status table (edge_contracts/status.py) decides the code of a domain error, as
for gRPC; this module only says which HTTP status each code is, and writes the body.
Two body shapes, one per protocol family:

* the gateway's own routes: ``{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}``
* the Open Inference Protocol routes (``/v2/...``): ``{"error": "...", "code": "..."}``,
  the protocol's ``$inference_error_response`` (a string, which ``tritonclient`` and
  other V2 clients show as the message) with the code beside it.

A retry hint (``Overloaded.retry_after_ms``) becomes ``Retry-After`` in whole seconds
(at least 1, the header's unit) and ``retry-after-ms``, the gRPC side's exact value.
"""

from __future__ import annotations

import math
from typing import Literal

import grpc
from aiohttp import web

from edge_contracts.retry_hint import RETRY_AFTER_KEY
from edge_contracts.status import status_for

Flavour = Literal["edge", "v2"]

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    # A state the call does not fit (the version asked for is not the serving one): 409,
    # the request may succeed once the state changes, unlike a malformed one (400).
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class HttpRefusal(Exception):
    """A request the HTTP layer refuses before the domain sees it (408, 411, 413, 415):
    statuses with no place in the gRPC table."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_body(code: str, message: str, flavour: Flavour) -> dict[str, object]:
    if flavour == "v2":
        return {"error": message, "code": code}
    return {"error": {"code": code, "message": message}}


def plain_error(
    status: int, code: str, message: str, flavour: Flavour = "edge", **headers: str
) -> web.Response:
    """An error the HTTP layer finds itself (no route, wrong method, body too large)."""
    return web.json_response(error_body(code, message, flavour), status=status, headers=headers)


def error_response(exc: BaseException, flavour: Flavour = "edge") -> web.Response:
    """The answer for ``exc`` raised by the domain (unexpected ones: 500 with a
    correlation id, the traceback logged under it by ``status_for``)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    retry_after_ms = getattr(exc, "retry_after_ms", None)
    if isinstance(retry_after_ms, int) and not isinstance(retry_after_ms, bool):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after_ms / 1000)))
        headers[RETRY_AFTER_KEY] = str(max(0, retry_after_ms))
    return plain_error(
        HTTP_STATUS.get(status.code, 500), status.code.name, status.message, flavour, **headers
    )
