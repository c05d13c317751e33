"""The same admission control over HTTP: with a model's queue full, a V2 infer or a
prediction is refused at once with 429, RESOURCE_EXHAUSTED and the gateway's retry hint
(Retry-After in seconds, retry-after-ms exactly), while the admitted calls are answered."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.support.metrics_text import total
from tests.support.model_factory import slow_classifier
from tests.support.processes import ServerProcess

CALLS = 16


def test_a_full_queue_answers_429_with_the_retry_hint(tmp_path: Path) -> None:
    slow_classifier(tmp_path / "models" / "slow" / "1" / "model.onnx")
    server = ServerProcess(
        ["--model-root", str(tmp_path / "models"), "--max-queue-size", "2",
         "--inference-workers", "1", "--batching", "off", "--inline-threshold-us", "0"]
    )  # fmt: skip
    try:
        server.wait_serving()
        url = f"http://127.0.0.1:{server.http_port}/v2/models/slow/infer"
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8],
                            "data": [1.0] * 64}]}  # fmt: skip

        def call(_: int) -> requests.Response:
            return requests.post(url, json=body, timeout=60)

        with ThreadPoolExecutor(CALLS) as pool:
            replies = list(pool.map(call, range(CALLS)))
        statuses = sorted(reply.status_code for reply in replies)
        assert set(statuses) == {200, 429}, statuses
        refused = [reply for reply in replies if reply.status_code == 429]
        for reply in refused:
            assert reply.json()["code"] == "RESOURCE_EXHAUSTED"
            assert "requests in progress" in reply.json()["error"]
            assert int(reply.headers["Retry-After"]) >= 1
            assert int(reply.headers["retry-after-ms"]) >= 0
        text = requests.get(f"http://127.0.0.1:{server.http_port}/metrics", timeout=5).text
        labels = dict(method="http_infer", model="slow", version="", code="RESOURCE_EXHAUSTED")
        assert total(text, "edge_requests_total", **labels) == len(refused)  # every worker
    finally:
        if server.terminate() != 0:
            server.kill()
