"""The V2 (KServe / Open Inference Protocol) service through stock tritonclient.

Every answer is checked against onnxruntime run directly on the same model file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from edge_server import __version__
from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.shared_memory import TOKEN_A, two_apps
from tests.support.triton_remote import TritonError, TritonRemote, tensor
from tests.support.v2_models import two_heads

ONNX_TO_V2 = {"tensor(float)": "FP32", "tensor(int64)": "INT64"}


@pytest.fixture
def model_root(model_root: Path) -> Path:
    """The standard root (gray, rgb, tensoronly) plus a model with two inputs, three outputs."""
    two_heads(model_root / "twoheads" / "1" / "model.onnx")
    return model_root


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def batch(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def reference_gray(image: Image.Image) -> np.ndarray:
    """The gray model's manifest recipe restated: L, bilinear 8x8, /255, (x - 0.5) / 0.5."""
    pixels = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BILINEAR))
    return ((pixels.astype(np.float64) / 255.0 - 0.5) / 0.5).astype(np.float32)[None, None]


def test_live_ready_and_model_ready(triton: TritonRemote) -> None:
    assert triton.call("is_server_live") is True
    assert triton.call("is_server_ready") is True
    assert triton.call("is_model_ready", model_name="gray") is True
    assert triton.call("is_model_ready", model_name="gray", model_version="2") is True
    # Version 1 is on disk but not the serving one.
    assert triton.call("is_model_ready", model_name="gray", model_version="1") is False
    with pytest.raises(TritonError) as unknown:
        triton.call("is_model_ready", model_name="nope")
    assert unknown.value.status == "NOT_FOUND"


def test_server_metadata(triton: TritonRemote) -> None:
    metadata = triton.call("get_server_metadata", as_json=True)
    assert metadata["name"] == "edge-inference-gateway"
    assert metadata["version"] == __version__
    assert set(metadata["extensions"]) == {
        "model_repository",
        "model_configuration",
        "statistics",
        "system_shared_memory",
    }


@pytest.mark.parametrize("model, version", [("tensoronly", "7"), ("twoheads", "1"), ("gray", "2")])
def test_model_metadata_matches_the_onnx_model(
    triton: TritonRemote, model_root: Path, model: str, version: str
) -> None:
    metadata = triton.call("get_model_metadata", model_name=model, as_json=True)
    session = ort.InferenceSession(str(model_root / model / version / "model.onnx"))

    def expected(args: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "name": a.name,
                "datatype": ONNX_TO_V2[a.type],
                "shape": [str(d if isinstance(d, int) else -1) for d in a.shape],
            }
            for a in args
        ]

    assert metadata["name"] == model
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == expected(session.get_inputs())
    assert metadata["outputs"] == expected(session.get_outputs())
    on_disk = sorted(p.name for p in (model_root / model).iterdir() if p.is_dir())
    assert metadata["versions"] == on_disk


def test_model_config_summary(triton: TritonRemote) -> None:
    gray = triton.call("get_model_config", model_name="gray", as_json=True)["config"]
    assert gray["platform"] == "onnxruntime_onnx"
    assert gray["backend"] == "onnxruntime"
    assert gray["input"] == [
        {
            "name": "input",
            "data_type": "TYPE_FP32",
            "format": "FORMAT_NCHW",
            "dims": ["-1", "1", "8", "8"],
        }
    ]
    assert gray["output"] == [{"name": "logits", "data_type": "TYPE_FP32", "dims": ["-1", "10"]}]
    assert gray["parameters"]["version"]["string_value"] == "2"
    assert gray["parameters"]["image_input"]["string_value"] == "true"
    assert '"color_mode": "L"' in gray["parameters"]["manifest"]["string_value"]
    plain = triton.call("get_model_config", model_name="tensoronly", as_json=True)["config"]
    assert plain["parameters"]["image_input"]["string_value"].startswith("false: ")


def test_raw_inference_equals_onnxruntime(triton: TritonRemote, model_root: Path) -> None:
    x = batch((3, 2, 4, 4), seed=1)
    answer = triton.infer(
        "tensoronly",
        [tensor("input", x)],
        request_id="req-42",
        parameters={"note": "free text", "retries": 3, "urgent": True, "weight": 0.5},
    )
    expected = run_onnx(model_root / "tensoronly" / "7" / "model.onnx", {"input": x})
    assert answer.response["id"] == "req-42"
    assert answer.response["model_name"] == "tensoronly"
    assert answer.response["model_version"] == "7"
    assert answer.response["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": ["3", "3"]}
    ]
    np.testing.assert_allclose(answer.outputs["logits"], expected["logits"], rtol=1e-6)


def test_typed_contents_inference_equals_onnxruntime(
    triton: TritonRemote, model_root: Path
) -> None:
    x = batch((2, 2, 4, 4), seed=2)
    response = triton.send(
        {
            "model_name": "tensoronly",
            "id": "typed-1",
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": list(x.shape),
                    "contents": {"fp32_contents": x.ravel().tolist()},
                }
            ],
        }
    )
    expected = run_onnx(model_root / "tensoronly" / "7" / "model.onnx", {"input": x})["logits"]
    assert response["id"] == "typed-1"
    assert "raw_output_contents" not in response  # typed in, typed out
    (output,) = response["outputs"]
    assert output["shape"] == ["2", "3"]
    values = np.array(output["contents"]["fp32_contents"], np.float32).reshape(2, 3)
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_several_inputs_and_requested_outputs(triton: TritonRemote, model_root: Path) -> None:
    x = batch((4, 3), seed=3)
    k = np.array([5, -1, 0, 2**40], np.int64)
    answer = triton.infer(
        "twoheads", [tensor("k", k), tensor("x", x)], outputs=["k_next", "doubled"]
    )
    expected = run_onnx(model_root / "twoheads" / "1" / "model.onnx", {"x": x, "k": k})
    assert [o["name"] for o in answer.response["outputs"]] == ["k_next", "doubled"]
    assert [o["datatype"] for o in answer.response["outputs"]] == ["INT64", "FP32"]
    np.testing.assert_array_equal(answer.outputs["k_next"], expected["k_next"])
    np.testing.assert_allclose(answer.outputs["doubled"], expected["doubled"], rtol=1e-6)
    everything = triton.infer("twoheads", [tensor("x", x), tensor("k", k)])
    assert list(everything.outputs) == ["doubled", "negated", "k_next"]


def test_missing_input_is_named(triton: TritonRemote) -> None:
    with pytest.raises(TritonError) as missing:
        triton.infer("twoheads", [tensor("x", batch((1, 3)))])
    assert missing.value.status == "INVALID_ARGUMENT"
    assert "model 'twoheads' also needs input(s) k: INT64 [-1]" in missing.value.message


def test_bytes_input_with_encoded_images_uses_the_manifest(
    triton: TritonRemote, model_root: Path
) -> None:
    rng = np.random.default_rng(4)
    images = [Image.fromarray(rng.integers(0, 256, (20, 30), np.uint8), "L") for _ in range(2)]
    encoded = np.empty(2, dtype=object)
    encoded[:] = [png(image) for image in images]
    answer = triton.infer("gray", [tensor("input", encoded)])
    reference = np.concatenate([reference_gray(image) for image in images])
    expected = run_onnx(model_root / "gray" / "2" / "model.onnx", {"input": reference})
    assert answer.response["outputs"][0]["shape"] == ["2", "10"]
    np.testing.assert_allclose(answer.outputs["logits"], expected["logits"], atol=1e-4)


def test_stream_answers_in_order_and_survives_a_bad_request(
    triton: TritonRemote, model_root: Path
) -> None:
    good = [batch((1, 2, 4, 4), seed=10 + i) for i in range(4)]
    requests = [
        {"model": "tensoronly", "inputs": [tensor("input", x)], "request_id": f"s{i}"}
        for i, x in enumerate(good)
    ]
    bad = {"model": "tensoronly", "inputs": [tensor("input", batch((1, 2, 4, 5)))]}
    requests.insert(2, {**bad, "request_id": "bad"})
    answers = triton.stream(requests)
    assert len(answers) == 5
    assert isinstance(answers[2], str)
    assert answers[2].startswith("INVALID_ARGUMENT: ")
    assert "does not fit input: FP32 [-1, 2, 4, 4]" in answers[2]
    path = model_root / "tensoronly" / "7" / "model.onnx"
    for answer, x, wanted_id in zip(
        [a for i, a in enumerate(answers) if i != 2], good, ["s0", "s1", "s2", "s3"], strict=True
    ):
        assert not isinstance(answer, str)
        assert answer.response["id"] == wanted_id
        expected = run_onnx(path, {"input": x})["logits"]
        np.testing.assert_allclose(answer.outputs["logits"], expected, rtol=1e-6)


def request_count(metrics: str, method: str, model: str, version: str, code: str) -> float:
    """edge_requests_total for one label set, from the Prometheus text format."""
    wanted = {"method": method, "model": model, "version": version, "code": code}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "edge_requests_total" and sample.labels == wanted:
                return float(sample.value)
    return 0.0


def _stats(triton: TritonRemote, model: str) -> dict[str, Any]:
    (entry,) = triton.call("get_inference_statistics", model_name=model, as_json=True)[
        "model_stats"
    ]
    return entry  # type: ignore[no-any-return]


def _count(entry: dict[str, Any], key: str) -> int:
    return int(entry["inference_stats"].get(key, {}).get("count", 0))


def test_statistics_move_with_the_same_accounting_as_metrics(
    triton: TritonRemote, threaded_gateway: ThreadedGateway
) -> None:
    before = _stats(triton, "tensoronly")
    assert before["version"] == "7"
    assert int(before.get("inference_count", 0)) == 0
    for seed in range(2):
        triton.infer("tensoronly", [tensor("input", batch((3, 2, 4, 4), seed=seed))])
    with pytest.raises(TritonError):
        triton.infer("tensoronly", [tensor("input", batch((1, 2, 4, 5)))])
    after = _stats(triton, "tensoronly")
    assert int(after["inference_count"]) == 6  # rows
    assert int(after["execution_count"]) == 2  # session runs
    assert _count(after, "success") == 2
    assert _count(after, "fail") == 1
    for key in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert _count(after, key) == 2
    assert int(after["inference_stats"]["compute_infer"]["ns"]) > 0
    assert int(after["last_inference"]) > 0
    metrics = threaded_gateway.gateway.metrics.render().decode()
    assert request_count(metrics, "ModelInfer", "tensoronly", "7", "OK") == 2
    assert request_count(metrics, "ModelInfer", "tensoronly", "", "INVALID_ARGUMENT") == 1
    everything = triton.call("get_inference_statistics", as_json=True)["model_stats"]
    assert {(e["name"], e["version"]) for e in everything} == {
        ("gray", "2"),
        ("rgb", "1"),
        ("tensoronly", "7"),
        ("twoheads", "1"),
    }


def test_system_shared_memory_with_tritonclients_own_helpers(
    triton_worker: TritonRemote, model_root: Path, tmp_path: Path
) -> None:
    """tritonclient.utils.shared_memory + register/infer/unregister, unchanged but for
    the app token each call carries (headers=)."""
    tokens = two_apps(tmp_path)
    running = ThreadedGateway(gateway_settings(model_root, shared_memory_app_tokens=tokens))
    try:
        triton_worker.connect(running.target)
        x = batch((5, 3), seed=4)
        k = np.arange(5, dtype=np.int64)
        inputs = [tensor("x", x), tensor("k", k)]
        answer = triton_worker.shm_infer("twoheads", inputs, output="doubled", token=TOKEN_A)
        with pytest.raises(TritonError) as anonymous:
            triton_worker.shm_infer("twoheads", inputs, output="doubled", token="not-a-token")
        assert anonymous.value.status == "PERMISSION_DENIED"
    finally:
        running.stop()
    expected = run_onnx(model_root / "twoheads" / "1" / "model.onnx", {"x": x, "k": k})
    np.testing.assert_array_equal(answer["array"], expected["doubled"])
    assert answer["output"]["parameters"]["shared_memory_region"]["string_param"] == "result"
    regions = answer["status"]["regions"]
    assert set(regions) == {"inputs", "result"}
    assert int(regions["inputs"]["byte_size"]) == x.nbytes + k.nbytes
