"""SIGTERM: NOT_SERVING, new calls refused, the in-flight call finishes, exit code 0."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2
from tests.support.model_factory import slow_model
from tests.support.processes import ServerProcess


def slow_request() -> inference_pb2.PredictRequest:
    data = np.ones((1, 1024), np.float32)
    return inference_pb2.PredictRequest(
        tensor=types_pb2.Tensor(
            dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[1, 1024], data=data.tobytes()
        )
    )


@pytest.mark.slow
def test_sigterm_drains_in_flight_call(tmp_path: Path) -> None:
    slow_model(tmp_path / "slow" / "1" / "model.onnx", rows=4096)  # ~1 s per call
    server = ServerProcess(
        ["--model-root", str(tmp_path), "--intra-op-threads", "1", "--shutdown-grace-seconds", "10"]
    )
    try:
        server.wait_serving()
        results: dict[str, object] = {}
        with grpc.insecure_channel(server.target) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)

            def in_flight() -> None:
                try:
                    results["reply"] = stub.Predict(slow_request(), timeout=30)
                except grpc.RpcError as err:
                    results["error"] = err

            worker = threading.Thread(target=in_flight)
            worker.start()
            time.sleep(0.3)  # the call is now inside session.run
            server.proc.send_signal(15)
            time.sleep(0.2)
            with grpc.insecure_channel(server.target) as fresh:
                health = health_pb2_grpc.HealthStub(fresh)
                with pytest.raises(grpc.RpcError) as refused:
                    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    # Still reachable while draining: it must say NOT_SERVING.
                    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
                    inference_pb2_grpc.InferenceServiceStub(fresh).Predict(
                        slow_request(), timeout=2
                    )
                assert refused.value.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.CANCELLED,
                )
            worker.join(30)
        assert "error" not in results, results.get("error")
        reply = results["reply"]
        assert isinstance(reply, inference_pb2.PredictResponse) and reply.model_name == "slow"
        assert server.proc.wait(20) == 0
        assert any("gateway stopped" in line for line in server.log)
    finally:
        server.kill()
