"""V2 model repository extension through tritonclient: index, load, unload, and their auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.triton_remote import TritonError, TritonRemote, tensor

TOKEN = "v2-s3cret"


def index(triton: TritonRemote) -> list[tuple[str, str, str, str]]:
    entries = triton.call("get_model_repository_index", as_json=True)["models"]
    return [(e["name"], e.get("version", ""), e["state"], e.get("reason", "")) for e in entries]


def gray_input() -> list[dict[str, object]]:
    return [tensor("input", np.zeros((1, 1, 8, 8), np.float32))]


def test_index_lists_every_version_on_disk(triton: TritonRemote) -> None:
    assert index(triton) == [
        ("gray", "1", "UNAVAILABLE", "not the serving version (2 is)"),
        ("gray", "2", "READY", ""),
        ("rgb", "1", "READY", ""),
        ("tensoronly", "7", "READY", ""),
    ]


def test_unload_then_load_again(triton: TritonRemote) -> None:
    triton.call("unload_model", model_name="gray")
    assert triton.call("is_model_ready", model_name="gray") is False
    assert ("gray", "2", "UNAVAILABLE", "unloaded") in index(triton)
    with pytest.raises(TritonError) as unloaded:
        triton.infer("gray", gray_input())
    assert unloaded.value.status == "UNAVAILABLE"
    triton.call("load_model", model_name="gray")
    assert triton.call("is_model_ready", model_name="gray", model_version="2") is True
    assert triton.infer("gray", gray_input()).response["model_version"] == "2"


def test_load_a_chosen_version_with_a_triton_config(triton: TritonRemote) -> None:
    config = json.dumps({"version_policy": {"specific": {"versions": [1]}}})
    triton.call("load_model", model_name="gray", config=config)
    assert triton.call("is_model_ready", model_name="gray", model_version="1") is True
    assert triton.call("is_model_ready", model_name="gray", model_version="2") is False
    assert triton.infer("gray", gray_input()).response["model_version"] == "1"
    assert triton.call("get_model_metadata", model_name="gray", as_json=True)["versions"] == [
        "1",
        "2",
    ]
    stats = triton.call("get_inference_statistics", model_name="gray", as_json=True)
    assert {e["version"]: int(e.get("inference_count", 0)) for e in stats["model_stats"]} == {
        "1": 1
    }


def test_load_errors(triton: TritonRemote) -> None:
    with pytest.raises(TritonError) as unknown:
        triton.call("load_model", model_name="nope")
    assert unknown.value.status == "NOT_FOUND"
    with pytest.raises(TritonError) as no_version:
        config = json.dumps({"version_policy": {"specific": {"versions": [9]}}})
        triton.call("load_model", model_name="gray", config=config)
    assert no_version.value.status == "NOT_FOUND"
    assert "has no version '9' on disk" in no_version.value.message
    with pytest.raises(TritonError) as full_config:
        triton.call("load_model", model_name="gray", config=json.dumps({"max_batch_size": 8}))
    assert full_config.value.status == "INVALID_ARGUMENT"
    assert "must be JSON holding only" in full_config.value.message
    with pytest.raises(TritonError) as files:
        triton.call("load_model", model_name="gray", files={"file:1/model.onnx": "x"})
    assert files.value.status == "INVALID_ARGUMENT"
    assert "load parameter 'file:1/model.onnx' is not supported" in files.value.message
    with pytest.raises(TritonError) as unload_unknown:
        triton.call("unload_model", model_name="nope")
    assert unload_unknown.value.status == "NOT_FOUND"


def test_unloading_every_model_makes_the_server_not_ready(triton: TritonRemote) -> None:
    for name in ("gray", "rgb", "tensoronly"):
        triton.call("unload_model", model_name=name, unload_dependents=True)
    assert triton.call("is_server_live") is True
    assert triton.call("is_server_ready") is False
    triton.call("load_model", model_name="rgb")
    assert triton.call("is_server_ready") is True


@pytest.fixture
def guarded(
    model_root: Path, tmp_path: Path, triton_worker: TritonRemote
) -> Iterator[TritonRemote]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    running = ThreadedGateway(gateway_settings(model_root, management_token_file=token_file))
    triton_worker.connect(running.target)
    yield triton_worker
    running.stop()


def test_load_and_unload_need_the_management_token(guarded: TritonRemote) -> None:
    for method in ("unload_model", "load_model"):
        with pytest.raises(TritonError) as missing:
            guarded.call(method, model_name="tensoronly")
        assert missing.value.status == "UNAUTHENTICATED"
        assert "authorization: Bearer <token>" in missing.value.message
        with pytest.raises(TritonError) as wrong:
            guarded.call(method, model_name="tensoronly", headers={"authorization": "Bearer no"})
        assert wrong.value.status == "PERMISSION_DENIED"
    auth = {"authorization": f"Bearer {TOKEN}"}
    guarded.call("unload_model", model_name="tensoronly", headers=auth)
    assert guarded.call("is_model_ready", model_name="tensoronly") is False
    guarded.call("load_model", model_name="tensoronly", headers=auth)
    # Everything else stays open.
    assert guarded.call("is_model_ready", model_name="tensoronly") is True
    assert guarded.call("get_model_repository_index", as_json=True)["models"]
    x = np.zeros((1, 2, 4, 4), np.float32)
    assert guarded.infer("tensoronly", [tensor("input", x)]).response["model_version"] == "7"


@pytest.fixture
def split_ports(
    model_root: Path, triton_worker: TritonRemote
) -> Iterator[tuple[TritonRemote, ThreadedGateway]]:
    settings = gateway_settings(model_root, management_port=0, management_token=TOKEN)
    running = ThreadedGateway(settings)
    yield triton_worker, running
    running.stop()


def test_separate_management_port_takes_the_repository_calls(
    split_ports: tuple[TritonRemote, ThreadedGateway],
) -> None:
    triton, running = split_ports
    auth = {"authorization": f"Bearer {TOKEN}"}
    triton.connect(running.target)
    with pytest.raises(TritonError) as elsewhere:
        triton.call("unload_model", model_name="tensoronly", headers=auth)
    assert elsewhere.value.status == "UNIMPLEMENTED"
    assert "served on the gateway's management port" in elsewhere.value.message
    assert triton.call("is_model_ready", model_name="tensoronly") is True
    triton.connect(f"127.0.0.1:{running.gateway.management_port}")
    with pytest.raises(TritonError) as no_token:
        triton.call("unload_model", model_name="tensoronly")
    assert no_token.value.status == "UNAUTHENTICATED"
    triton.call("unload_model", model_name="tensoronly", headers=auth)
    assert ("tensoronly", "7", "UNAVAILABLE", "unloaded") in index(triton)
    with pytest.raises(TritonError) as no_inference_here:
        triton.call("is_server_ready")
    assert no_inference_here.value.status == "UNIMPLEMENTED"
    triton.connect(running.target)
    assert triton.call("is_model_ready", model_name="tensoronly") is False
