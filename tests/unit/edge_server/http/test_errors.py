"""edge_server/http/errors.py: every code of the status table has an HTTP status, and
domain errors leave with the status, body and retry hint the docs promise."""

from __future__ import annotations

import json

import grpc
import pytest
from aiohttp import web

from edge_contracts.status import registered
from edge_server.errors import (
    AccessDenied,
    DeadlineExpired,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    NotEnabled,
    Overloaded,
    Unauthenticated,
    VersionNotActive,
)
from edge_server.http.errors import HTTP_STATUS, error_response


def body(response: web.Response) -> dict[str, object]:
    assert response.text is not None
    parsed: dict[str, object] = json.loads(response.text)
    return parsed


def test_every_registered_code_has_an_http_status() -> None:
    codes = set(registered().values()) | {grpc.StatusCode.INTERNAL}
    assert codes <= set(HTTP_STATUS), codes - set(HTTP_STATUS)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput("bad"), 400, "INVALID_ARGUMENT"),
        (ModelNotFound("gone"), 404, "NOT_FOUND"),
        (Unauthenticated("who"), 401, "UNAUTHENTICATED"),
        (AccessDenied("no"), 403, "PERMISSION_DENIED"),
        (ModelNotReady("later"), 503, "UNAVAILABLE"),
        (DeadlineExpired("late"), 504, "DEADLINE_EXCEEDED"),
        (VersionNotActive("other"), 409, "FAILED_PRECONDITION"),
        (NotEnabled("off"), 501, "UNIMPLEMENTED"),
    ],
)
def test_domain_errors(error: Exception, status: int, code: str) -> None:
    response = error_response(error)
    assert response.status == status
    assert body(response) == {"error": {"code": code, "message": str(error)}}
    assert "Retry-After" not in response.headers


def test_overload_carries_the_retry_hint_in_seconds_and_milliseconds() -> None:
    response = error_response(Overloaded("queue full", retry_after_ms=1500), "v2")
    assert response.status == 429
    assert response.headers["Retry-After"] == "2"  # whole seconds, rounded up
    assert response.headers["retry-after-ms"] == "1500"
    assert body(response) == {"error": "queue full", "code": "RESOURCE_EXHAUSTED"}
    assert error_response(Overloaded("x", retry_after_ms=10)).headers["Retry-After"] == "1"


def test_unexpected_errors_hide_their_text_behind_a_correlation_id() -> None:
    response = error_response(RuntimeError("secret path /etc/x"))
    assert response.status == 500
    error = body(response)["error"]
    assert isinstance(error, dict) and error["code"] == "INTERNAL"
    assert "correlation id" in error["message"] and "secret" not in error["message"]
