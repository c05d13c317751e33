"""The console application on an in-process aiohttp server on loopback: /metrics mounted
without auth from the hook, a 404 without it, no-auth only on loopback, security
headers on pages, static files as package data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter, generate_latest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.keys import ConsoleOptions
from cloud_orchestrator.console.server import STATIC, build_app, is_loopback
from cloud_orchestrator.errors import InvalidRequest


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Orchestrator]:
    orch = Orchestrator(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts")
    try:
        yield orch
    finally:
        orch.close()


async def test_metrics_hook_is_served_without_auth(orch: Orchestrator) -> None:
    registry = CollectorRegistry()
    Counter("edge_orchestrator_test", "a test counter", registry=registry).inc(3)
    app = build_app(orch, ConsoleOptions(), "test", metrics=lambda: generate_latest(registry))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "edge_orchestrator_test_total 3.0" in await response.text()
        assert (await client.get("/api/v1/models")).status == 401  # the API still needs one


async def test_without_the_hook_metrics_is_404(orch: Orchestrator) -> None:
    async with TestClient(TestServer(build_app(orch, ConsoleOptions(), "test"))) as client:
        response = await client.get("/metrics")
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_no_auth_on_loopback_and_page_headers(orch: Orchestrator) -> None:
    app = build_app(orch, ConsoleOptions(no_auth=True), "test")
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/fleet")
        assert page.status == 200 and "local" in await page.text()
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        script = await client.get("/static/fleet.js")
        assert script.status == 200 and "api/v1/gateways" in await script.text()


def test_no_auth_is_refused_off_loopback(orch: Orchestrator) -> None:
    with pytest.raises(InvalidRequest, match="loopback"):
        build_app(orch, ConsoleOptions(host="0.0.0.0", no_auth=True), "test")


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.org")


def test_static_files_are_package_data() -> None:
    names = {p.name for p in STATIC.iterdir()}
    assert {"console.js", "console.css", "fleet.js", "feedback.js"} <= names
    setup = (Path(__file__).resolve().parents[4] / "setup.cfg").read_text()
    assert "cloud_orchestrator.console = static/*.js, static/*.css" in setup
