"""Configuration precedence (flags > EDGE_* env > config file > defaults) and runtime options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.app import Gateway
from edge_server.settings import load_settings
from tests.support.gateways import gateway_settings


def test_precedence(tmp_path: Path) -> None:
    config = tmp_path / "edge.json"
    config.write_text(json.dumps({"grpc_port": 1111, "http_port": 2222, "max_queue_size": 7}))
    env = {"EDGE_GRPC_PORT": "3333", "EDGE_TRUSTED_KEYS": "a.pub,b.pub"}
    settings = load_settings({"grpc_port": "4444"}, environ=env, config_file=config)
    assert settings.grpc_port == 4444  # flag beats env and file
    assert settings.http_port == 2222  # file beats default
    assert settings.max_queue_size == 7
    assert settings.trusted_keys == (Path("a.pub"), Path("b.pub"))
    assert load_settings({}, environ=env).grpc_port == 3333  # env beats default
    assert load_settings({}, environ={}).grpc_port == 50051


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"grpc_port": "70000"}, "grpc_port must be 0..65535"),
        ({"tls_cert": "c.pem"}, "tls_cert and tls_key must be given together"),
        ({"graph_optimization": "turbo"}, "graph_optimization must be one of"),
        ({"pinned_versions": "digits"}, "is not NAME=VERSION"),
        ({"no_such_setting": "1"}, "unknown setting(s): no_such_setting"),
        ({"batching": "maybe"}, "use true or false"),
    ],
)
def test_bad_settings_are_named(values: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        load_settings(values, environ={})
    assert fragment in str(caught.value)


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
        assert slot.active.session.providers == ("CPUExecutionProvider",)  # type: ignore[attr-defined]
    finally:
        await gw.stop()
