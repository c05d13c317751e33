"""--workers 2: every process serves the public HTTP port (SO_REUSEPORT), and the routes
only the primary can answer are the same whichever process the kernel picked: /metrics
is the merged page of both workers, V2 REST load/unload are relayed to the primary and
answered once both workers followed, a wrong token is refused by either."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.http_gateway import DIGIT_3, TOKEN, http_gateway
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow

WORKER_UP = re.compile(r"worker 1 \(pid (\d+)\) is serving")
CONNECTIONS = 32  # P(all on one of 2 processes) = 2 * 0.5**32
READY_CHECKS = 16
CLOSE = {"Connection": "close"}  # every request below on a fresh connection


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with http_gateway(tmp_path_factory.mktemp("workers"), "--workers", "2") as server:
        deadline = time.monotonic() + 30
        while not any(WORKER_UP.search(line) for line in server.log):
            assert time.monotonic() < deadline, "worker 1 never came up:\n" + "".join(server.log)
            time.sleep(0.1)
        yield server


def metrics(port: int) -> dict[tuple[str, str], float]:
    """The merged page over a fresh connection: {(series name + labels, worker): value}."""
    reply = requests.get(f"http://127.0.0.1:{port}/metrics", headers=CLOSE, timeout=10)
    assert reply.status_code == 200, reply.text
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(reply.text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k != "worker")
            found[(f"{s.name}{{{labels}}}", s.labels["worker"])] = s.value
    return found


def per_worker(page: dict[tuple[str, str], float], series: str) -> dict[str, float]:
    return {worker: value for (name, worker), value in page.items() if name == series}


PREDICTED = "edge_requests_total{code=OK,method=http_predict,model=digits,version=1}"


def test_every_worker_serves_http_and_any_serves_the_merged_metrics(two: ServerProcess) -> None:
    before = per_worker(metrics(two.http_port), PREDICTED)

    def predict(_: int) -> int:
        reply = requests.post(
            f"http://127.0.0.1:{two.http_port}/predict",
            files={"image": DIGIT_3.read_bytes()},
            headers=CLOSE,
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return int(reply.json()["class_id"])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(predict, range(CONNECTIONS))) == [3] * CONNECTIONS
    pages = [metrics(two.http_port) for _ in range(8)]  # each on a process of its own
    for page in pages:
        after = per_worker(page, PREDICTED)
        assert set(after) == {"0", "1"}, after  # both processes answered /predict
        gained = {w: after[w] - before.get(w, 0) for w in after}
        assert sum(gained.values()) == CONNECTIONS and min(gained.values()) > 0, gained
        ready = per_worker(page, "edge_model_ready{model=digits}")
        assert ready == {"0": 1.0, "1": 1.0}, ready  # the whole page, whoever served it


def open_on_worker(two: ServerProcess, worker: str) -> http.client.HTTPConnection:
    """A kept-alive connection the kernel gave to ``worker`` ("0": the primary), found by
    a refused unload (a wrong token) counted on that worker's series; every refusal seen
    on the way is checked too."""
    failures = "edge_auth_failures_total{reason=invalid}"
    for _ in range(64):  # P(64 misses of one of 2 processes) = 0.5**64
        before = per_worker(metrics(two.http_port), failures).get(worker, 0)
        connection = http.client.HTTPConnection("127.0.0.1", two.http_port, timeout=10)
        status, body = request(connection, "unload", "Bearer wrong-token")
        assert (status, body["code"]) == (403, "PERMISSION_DENIED"), body
        assert "bearer token is not valid" in body["error"]
        if per_worker(metrics(two.http_port), failures).get(worker, 0) > before:
            return connection
        connection.close()
    raise AssertionError(f"no connection reached worker {worker}:\n" + "".join(two.log))


def request(
    connection: http.client.HTTPConnection, action: str, auth: str | None
) -> tuple[int, dict[str, Any]]:
    """A V2 REST repository call on digits-int8 over ``connection``: (status, JSON body)."""
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    connection.request(
        "POST", f"/v2/repository/models/digits-int8/{action}", body=b"{}", headers=headers
    )
    reply = connection.getresponse()
    return reply.status, json.loads(reply.read())


def readiness_on_fresh_connections(port: int) -> list[int]:
    url = f"http://127.0.0.1:{port}/v2/models/digits-int8/ready"

    def one(_: int) -> int:
        return requests.get(url, headers=CLOSE, timeout=10).status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(READY_CHECKS)))


@pytest.mark.parametrize("worker", ["1", "0"], ids=["via-replica", "on-primary"])
def test_v2_rest_unload_and_load_answer_once_every_worker_followed(
    two: ServerProcess, worker: str
) -> None:
    connection = open_on_worker(two, worker)
    try:
        socket = connection.sock
        status, body = request(connection, "unload", None)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED"), body
        assert request(connection, "unload", f"Bearer {TOKEN}") == (200, {})
        assert readiness_on_fresh_connections(two.http_port) == [503] * READY_CHECKS
        assert request(connection, "load", f"Bearer {TOKEN}") == (200, {})
        assert readiness_on_fresh_connections(two.http_port) == [200] * READY_CHECKS
        assert connection.sock is socket  # every call above on the worker's connection
    finally:
        connection.close()
    missing = requests.post(
        f"http://127.0.0.1:{two.http_port}/v2/repository/models/nope/load",
        headers={"Authorization": f"Bearer {TOKEN}", **CLOSE},
        timeout=10,
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND"), missing.text


def test_management_port_keeps_v2_rest_writes_off_every_worker(tmp_path: Path) -> None:
    """With --management-port, load/unload are the management port's (gRPC): 501 from
    whichever process the connection reached."""
    with http_gateway(tmp_path, "--workers", "2", "--management-port", "0") as server:
        for _ in range(8):
            load = requests.post(
                f"http://127.0.0.1:{server.http_port}/v2/repository/models/digits/load",
                headers={"Authorization": f"Bearer {TOKEN}", **CLOSE},
                timeout=10,
            )
            assert (load.status_code, load.json()["code"]) == (501, "UNIMPLEMENTED")
            assert "--management-port" in load.json()["error"]
