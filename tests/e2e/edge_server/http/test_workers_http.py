"""--workers 2: the primary process serves the public HTTP port (every route), and its
/metrics shows both processes, each labelled by worker, with the HTTP calls counted."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from tests.support.http_gateway import DIGIT_3, http_gateway
from tests.support.metrics_text import sample

pytestmark = pytest.mark.slow

WORKER_UP = re.compile(r"worker 1 \(pid (\d+)\) is serving")


def test_http_routes_and_metrics_with_two_workers(tmp_path: Path) -> None:
    with http_gateway(tmp_path, "--workers", "2", "--management-port", "0") as server:
        deadline = time.monotonic() + 30
        while not any(WORKER_UP.search(line) for line in server.log):
            assert time.monotonic() < deadline, "worker 1 never came up:\n" + "".join(server.log)
            time.sleep(0.1)
        base = f"http://127.0.0.1:{server.http_port}"
        with requests.Session() as session:
            for _ in range(5):
                reply = session.post(
                    f"{base}/predict", files={"image": DIGIT_3.read_bytes()}, timeout=10
                )
                assert reply.status_code == 200 and reply.json()["class_id"] == 3
            infer = session.post(
                f"{base}/v2/models/digits/infer",
                json={"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                                  "data": [0.0] * 784}]},
                timeout=10,
            )  # fmt: skip
            assert infer.status_code == 200, infer.text
            # Repository changes are the management port's business with several workers.
            load = session.post(
                f"{base}/v2/repository/models/digits/load",
                headers={"Authorization": "Bearer http-face-test-token"},
                timeout=10,
            )
            assert (load.status_code, load.json()["code"]) == (501, "UNIMPLEMENTED")
            assert "--management-port" in load.json()["error"]
            text = session.get(f"{base}/metrics", timeout=10).text
        labels = dict(method="http_predict", model="digits", version="1", code="OK", worker="0")
        assert sample(text, "edge_requests_total", **labels) == 5
        assert sample(text, "edge_model_ready", model="digits", worker="1") == 1
