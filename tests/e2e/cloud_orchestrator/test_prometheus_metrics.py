"""`edge-orchestrator serve --metrics-port` with real processes, on SQLite and PostgreSQL:
a pull gateway subscribes and fetches its bundle, and the scraped page counts the open
stream, the gateway online and every byte FetchModel served; a busy port is one error
line."""

from __future__ import annotations

import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.metrics_text import sample
from tests.support.orchestrator import (  # noqa: F401
    ORCHESTRATOR,
    OrchestratorProcess,
    Publisher,
    cli,
    db_url,
    free_port,
    postgres_server,
    publisher,
    until,
)
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

pytestmark = pytest.mark.slow

METRICS_URL = re.compile(r"orchestrator metrics on (http://\S+/metrics)")


def metrics_url(orchestrator: OrchestratorProcess) -> str:
    """Logged before the listening line OrchestratorProcess waits for."""
    for line in orchestrator.log:
        match = METRICS_URL.search(line)
        if match:
            return match[1]
    raise AssertionError("no metrics URL in the log:\n" + "".join(orchestrator.log))


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        return str(reply.read().decode())


def test_a_scrape_counts_streams_presence_and_fetched_bytes(
    db_url: str,
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    artifacts = tmp_path / "artifacts"
    bundle = publisher.gray_bundle("3")
    cli("publish", str(bundle), "--trusted-keys", str(publisher.public_key), db=db_url,
        artifacts=artifacts)  # fmt: skip
    cli("assign", "gray", "--gateways", "site=lab", "--version", "3", db=db_url,
        artifacts=artifacts)  # fmt: skip
    orchestrator = OrchestratorProcess(
        db_url, artifacts, "--heartbeat-seconds", "1", "--metrics-port", "0"
    )
    gateway = None
    try:
        url = metrics_url(orchestrator)
        before = scrape(url)
        assert sample(before, "edge_orchestrator_subscribe_streams") == 0
        assert sample(before, "edge_orchestrator_gateways", state="online") == 0
        assert sample(before, "edge_orchestrator_database_up") == 1

        gateway = start_pull_gateway(gray_root(tmp_path / "models"), orchestrator.target, publisher)
        until(lambda: serving_version(gateway.target) == "3", timeout=60)

        def fetched() -> str | None:
            page = scrape(url)
            served = sample(page, "edge_orchestrator_fetch_model_bytes_total")
            return page if served >= bundle.stat().st_size else None

        page = until(fetched, timeout=20)
        assert sample(page, "edge_orchestrator_fetch_model_bytes_total") == bundle.stat().st_size
        assert sample(page, "edge_orchestrator_subscribe_streams") == 1
        assert sample(page, "edge_orchestrator_gateways", state="online") == 1
        assert sample(page, "edge_orchestrator_gateways", state="offline") == 0

        # A change reaches the open stream: the fan-out is timed once more.
        fanouts = sample(page, "edge_orchestrator_desired_fanout_seconds_count")
        cli("assign", "gray", "--gateways", "site=lab", "--version", "latest", db=db_url,
            artifacts=artifacts)  # fmt: skip
        until(
            lambda: sample(scrape(url), "edge_orchestrator_desired_fanout_seconds_count") > fanouts,
            timeout=20,
        )

        assert gateway.terminate() == 0
        until(lambda: sample(scrape(url), "edge_orchestrator_subscribe_streams") == 0, timeout=20)
    finally:
        if gateway is not None:
            gateway.kill()
        assert orchestrator.terminate() == 0


def test_a_busy_metrics_port_is_one_error_line(tmp_path: Path) -> None:
    port = free_port()
    holder = OrchestratorProcess(
        f"sqlite:///{tmp_path / 'one.db'}", tmp_path / "a", "--metrics-port", str(port)
    )
    try:
        result = subprocess.run(
            [ORCHESTRATOR, "serve", "--db", f"sqlite:///{tmp_path / 'two.db'}", "--artifacts",
             str(tmp_path / "b"), "--port", "0", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        assert holder.terminate() == 0
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"edge-orchestrator: error: cannot listen on 127.0.0.1:{port}: the port is in use "
        "by another program; stop it or choose another port with --metrics-port"
    ]
