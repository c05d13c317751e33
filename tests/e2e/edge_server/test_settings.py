"""Settings as the edge-server process sees them: flag errors, --help, runtime options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings


def test_cli_rejects_bad_flags_with_exit_2(tmp_path: Path) -> None:
    server = Path(sys.executable).parent / "edge-server"
    done = subprocess.run(
        [str(server), "--model-root", str(tmp_path), "--grpc-port", "99999"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "grpc_port must be 0..65535" in done.stderr
    help_text = subprocess.run([str(server), "--help"], capture_output=True, text=True, timeout=30)
    assert help_text.returncode == 0 and "--max-message-bytes" in help_text.stdout


async def test_missing_providers_fall_back_to_cpu(model_root: Path) -> None:
    gw = Gateway(
        gateway_settings(
            model_root,
            execution_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider"),
            graph_optimization="basic",
            intra_op_threads=2,
            inter_op_threads=1,
        )
    )
    await gw.start()
    await gw.wait_for_models()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            health = await inference_pb2_grpc.InferenceServiceStub(ch).Health(
                inference_pb2.HealthRequest()
            )
        assert health.status == inference_pb2.SERVING_STATUS_SERVING
        slot = gw.models.slot("gray")
        assert slot is not None and slot.active is not None
        assert slot.active.session.providers == ("CPUExecutionProvider",)
    finally:
        await gw.stop()
