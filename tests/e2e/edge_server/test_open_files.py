"""File descriptors under idle-connection abuse (security review finding 6): 300 idle
HTTP connections under a 256 open-files limit once made new gRPC health checks time out
(``accept(): Too many open files``). The HTTP face is capped now, and the soft limit is
raised at start where the hard limit allows."""

from __future__ import annotations

import resource
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.metrics_text import sample, samples, total
from tests.support.model_factory import build_model_root
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow


@contextmanager
def gateway(model_root: Path, nofile: tuple[int, int], *flags: str) -> Iterator[ServerProcess]:
    server = ServerProcess(["--model-root", str(model_root), *flags], nofile=nofile)
    try:
        server.wait_serving()
        yield server
    finally:
        server.terminate()


def metrics(server: ServerProcess) -> str:
    """/metrics, once the endpoint has room again (right after a flood of connections the
    gateway may not have seen all of them close yet, and answers 503 until it has)."""
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return str(reply.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def health_check_seconds(server: ServerProcess) -> float:
    started = time.perf_counter()
    with grpc.insecure_channel(server.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return time.perf_counter() - started


def test_idle_http_connections_cannot_starve_grpc(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"this test opens 300 sockets; the hard open-files limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1024), hard))
    model_root = build_model_root(tmp_path / "models")
    # Hard limit 256 too: the gateway cannot raise it, as on a locked-down board.
    with gateway(model_root, (256, 256), "--http-max-connections", "32") as server:
        idle: list[socket.socket] = []
        refused = 0
        try:
            for _ in range(300):
                conn = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
                idle.append(conn)
            time.sleep(0.5)  # let the gateway accept them all
            assert health_check_seconds(server) < 2.0
            for conn in idle:  # beyond the cap: an immediate 503, then closed
                conn.settimeout(0.05)
                try:
                    if conn.recv(64).startswith(b"HTTP/1.1 503"):
                        refused += 1
                except TimeoutError:
                    pass  # one of the 32 admitted, waiting for its request
        finally:
            for conn in idle:
                conn.close()
        text = metrics(server)
        # The cap is per process: every worker (one per core by default) admits 32.
        caps = samples(text, "edge_http_max_connections")
        assert caps and set(caps) == {32}
        assert refused >= 300 - 32 * len(caps) - 4  # a few may still sit in the accept queue
        assert samples(text, "edge_open_files_limit") == [256] * len(caps)
        assert total(text, "edge_http_refused_connections_total") >= refused
        assert all(0 < n < 256 for n in samples(text, "edge_open_files"))
        assert health_check_seconds(server) < 2.0


def test_the_soft_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    model_root = build_model_root(tmp_path / "models")
    with gateway(model_root, (256, 4096)) as server:
        assert sample(metrics(server), "edge_open_files_limit") == 4096
        assert any("open-files limit raised from 256 to 4096" in line for line in server.log)


def test_an_oversized_request_head_gets_431_and_the_endpoint_keeps_answering(
    tmp_path: Path,
) -> None:
    model_root = build_model_root(tmp_path / "models")
    with gateway(model_root, (1024, 1024)) as server:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as conn:
            conn.sendall(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 20_000)
            conn.settimeout(5)
            # HTTP/1.0: aiohttp answers a request it could not parse in the oldest version.
            status_line = conn.recv(64).split(b"\r\n", 1)[0]
            assert status_line in (
                b"HTTP/1.0 431 Request Header Fields Too Large",
                b"HTTP/1.1 431 Request Header Fields Too Large",
            )
        assert "edge_open_files" in metrics(server)
