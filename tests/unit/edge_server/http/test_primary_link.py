"""A replica's HTTP link to the primary, between two real aiohttp endpoints on unix
sockets: the caller's method, path, query, body and token reach the primary's handler,
its status, body and retry hint come back; a primary that does not answer is a 503."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from edge_server.http.errors import HttpRefusal
from edge_server.http.primary_link import PrimaryLink
from edge_server.http.routes import Route
from edge_server.http.server import HttpEndpoint, HttpLimits


async def primary_handler(request: web.Request) -> web.Response:
    """Echoes what it was sent; answers 429 with a retry hint when asked to."""
    seen = {
        "method": request.method,
        "path": request.path_qs,
        "body": (await request.read()).decode(),
        "authorization": request.headers.get("Authorization"),
    }
    if request.query.get("refuse"):
        return web.json_response(
            seen, status=429, headers={"Retry-After": "2", "retry-after-ms": "1500"}
        )
    return web.json_response(seen)


async def metrics_page(_request: web.Request) -> web.Response:
    return web.Response(body=b"edge_up 1\n", content_type="text/plain")


def endpoint(routes: list[Route]) -> HttpEndpoint:
    return HttpEndpoint(routes, HttpLimits(8, 1024 * 1024))


async def test_a_call_goes_to_the_primary_and_its_answer_comes_back(tmp_path: Path) -> None:
    path = "/v2/repository/models/{model}/load"
    primary = endpoint(
        [
            Route("POST", path, primary_handler, "load", "v2"),
            Route("GET", "/metrics", metrics_page, "metrics", "operations"),
        ]
    )
    await primary.start_unix(tmp_path / "http.sock")
    link = PrimaryLink(tmp_path / "http.sock")
    replica = endpoint([Route("POST", path, link.forward, "load", "v2")])
    await replica.start_unix(tmp_path / "replica.sock")
    try:
        assert await link.metrics() == b"edge_up 1\n"
        connector = aiohttp.UnixConnector(path=str(tmp_path / "replica.sock"))
        async with aiohttp.ClientSession(connector=connector) as client:
            sent = {"parameters": {"version": "2"}}
            headers = {"Authorization": "Bearer t0ken"}
            url = "http://replica/v2/repository/models/m/load"
            async with client.post(url, json=sent, headers=headers) as answer:
                assert answer.status == 200
                assert await answer.json() == {
                    "method": "POST",
                    "path": "/v2/repository/models/m/load",
                    "body": json.dumps(sent),
                    "authorization": "Bearer t0ken",
                }
            async with client.post(url + "?refuse=1") as answer:
                assert answer.status == 429
                assert (answer.headers["Retry-After"], answer.headers["retry-after-ms"]) == (
                    "2",
                    "1500",
                )
                assert (await answer.json())["path"].endswith("?refuse=1")
    finally:
        await replica.stop()
        await primary.stop()
        await link.close()


async def test_a_primary_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    link = PrimaryLink(tmp_path / "nobody.sock")
    try:
        with pytest.raises(HttpRefusal) as refused:
            await link.metrics()
        assert (refused.value.status, refused.value.code) == (503, "UNAVAILABLE")
        assert "primary process" in str(refused.value)
    finally:
        await link.close()
