"""The console's error boundary on an in-process aiohttp server on loopback: domain
errors by type, framework errors and crashes as JSON with an exact status."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cloud_orchestrator.console.errors import ApiError, error_middleware
from cloud_orchestrator.errors import Conflict, GatewayError, InvalidRequest, NotFound


async def raising(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    errors: dict[str, Exception] = {
        "missing": NotFound("no rollout 'r-1'"),
        "invalid": InvalidRequest("strategy 'x' is unknown"),
        "conflict": Conflict("it exists"),
        "gateway": GatewayError("unreachable"),
        "api": ApiError(418, "teapot", "short and stout"),
        "crash": RuntimeError("secret detail"),
    }
    raise errors[kind]


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("missing", 404, "not_found"),
        ("invalid", 422, "invalid"),
        ("conflict", 409, "conflict"),
        ("gateway", 502, "gateway_error"),
        ("api", 418, "teapot"),
    ],
)
async def test_errors_become_json(kind: str, status: int, code: str) -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/api/v1/{kind}", raising)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(f"/api/v1/{kind}")
        assert response.status == status
        body = await response.json()
        assert body["error"]["code"] == code and body["error"]["message"]


async def test_a_crash_is_500_with_a_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/api/v1/{kind}", raising)
    with caplog.at_level(logging.ERROR):
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/v1/crash")
            body = await response.json()
    assert response.status == 500 and "secret" not in body["error"]["message"]
    correlation = body["error"]["message"].split("id ")[1].rstrip(")")
    assert any(correlation in record.getMessage() for record in caplog.records)


async def test_unknown_routes_and_methods_on_the_api_are_json() -> None:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/api/v1/{kind}", raising)
    async with TestClient(TestServer(app)) as client:
        missing = await client.get("/api/v2/nothing")
        assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
        wrong = await client.delete("/api/v1/missing")
        assert wrong.status == 405
        assert (await wrong.json())["error"]["code"] == "method_not_allowed"
