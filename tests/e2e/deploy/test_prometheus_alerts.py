"""A real Prometheus with the deploy/prometheus rules (every ``for:`` cut to 1 s) scrapes a
real gateway (`edge-server`) and a real orchestrator (`edge-orchestrator serve
--metrics-port`) every second: both are up, the recording rules find the metric names they
read, and stopping the gateway fires EdgeGatewayDown through the alerts API."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from tests.support.model_factory import build_model_root
from tests.support.orchestrator import OrchestratorProcess, until
from tests.support.processes import ServerProcess
from tests.support.prometheus import INSTALLED, MISSING, PrometheusProcess, quick_rules

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not INSTALLED, reason=MISSING)]


def orchestrator_metrics_target(orchestrator: OrchestratorProcess) -> str:
    for line in orchestrator.log:
        if "orchestrator metrics on http://" in line:
            return line.split("http://", 1)[1].split("/", 1)[0]
    raise AssertionError("no metrics port in the log:\n" + "".join(orchestrator.log))


def predict_a_few(target: str) -> None:
    """Some traffic, so request series exist before the first scrape."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 90).save(buffer, "PNG")
    with grpc.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for _ in range(3):
            stub.Predict(inference_pb2.PredictRequest(model_name="gray", image=buffer.getvalue()))


def firing(prometheus: PrometheusProcess, name: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == name]


@pytest.mark.timeout(90)
def test_prometheus_scrapes_both_tiers_and_fires_gateway_down(tmp_path: Path) -> None:
    gateway = ServerProcess(
        ["--model-root", str(build_model_root(tmp_path / "models")), "--inference-workers",
         "1", "--preprocess-workers", "1", "--shutdown-grace-seconds", "1"]
    )  # fmt: skip
    orchestrator = None
    prometheus = None
    try:
        gateway.wait_serving()
        predict_a_few(gateway.target)
        orchestrator = OrchestratorProcess(
            f"sqlite:///{tmp_path / 'orchestrator.db'}", tmp_path / "artifacts",
            "--metrics-port", "0",
        )  # fmt: skip
        gateway_target = f"127.0.0.1:{gateway.http_port}"
        orchestrator_target = orchestrator_metrics_target(orchestrator)
        prometheus = PrometheusProcess(
            tmp_path / "prometheus",
            {"edge-gateway": [gateway_target], "edge-orchestrator": [orchestrator_target]},
            quick_rules(tmp_path),
            interval="1s",
        )

        up = {
            f"instance={gateway_target},job=edge-gateway": 1.0,
            f"instance={orchestrator_target},job=edge-orchestrator": 1.0,
        }
        until(lambda: prometheus.query("up") == up, timeout=15)
        # The recording rules read the names both tiers really export.
        until(lambda: prometheus.query("edge:gateways_up:sum") == {"job=edge-gateway": 1.0})
        until(lambda: prometheus.query('edge:requests:rate5m{model="gray"}'), timeout=10)
        online = 'edge_orchestrator:gateways:max{state="online"}'
        until(lambda: prometheus.query(online) == {"job=edge-orchestrator,state=online": 0.0})
        time.sleep(2)  # two more evaluations: nothing is down, nothing fires
        assert firing(prometheus, "EdgeGatewayDown") == []
        assert firing(prometheus, "EdgeOrchestratorDown") == []

        assert gateway.terminate() == 0
        alert = until(
            lambda: [a for a in firing(prometheus, "EdgeGatewayDown") if a["state"] == "firing"],
            timeout=15,
        )[0]
        assert alert["labels"] == {
            "alertname": "EdgeGatewayDown",
            "instance": gateway_target,
            "job": "edge-gateway",
            "severity": "warning",
        }
        assert alert["annotations"]["summary"] == (
            f"Gateway {gateway_target} does not answer metrics scrapes"
        )
        assert firing(prometheus, "EdgeOrchestratorDown") == []
    finally:
        if prometheus is not None:
            prometheus.stop()
        if orchestrator is not None:
            orchestrator.terminate()
        gateway.kill()
