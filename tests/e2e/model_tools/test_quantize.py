"""Quantization on the real digits model: size, accuracy bound, modes, bad calibration data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from model_tools.calibration import calibration_for_model
from model_tools.errors import ToolError
from model_tools.evaluate import evaluate_models
from model_tools.graph_stats import op_histogram
from model_tools.manifest_io import read_manifest
from model_tools.packaging import package_model
from model_tools.quantize import QuantizeOptions, choose_mode, quantize_model
from tests.support.bundles import make_keys
from tests.support.digits_model import Digits, run_cli
from tests.support.orchestrator import cli_json

FAST = {"progress": False, "bench_runs": 5}


def test_static_int8_is_small_and_accurate(digits: Digits) -> None:
    size_ratio = digits.int8.stat().st_size / digits.fp32.stat().st_size
    assert size_ratio <= 0.30
    report = evaluate_models(
        [digits.fp32, digits.int8], digits.test_npz, max_drop=1.0, progress=False
    )
    assert report.scores[0].top1 > 0.95
    assert report.drop_points is not None and report.drop_points <= 1.0
    assert report.agreement is not None and report.agreement >= 0.98
    assert report.passed
    histogram = op_histogram(onnx.load(str(digits.int8)))
    assert histogram["QuantizeLinear"] > 0 and histogram["DequantizeLinear"] > 0
    manifest = read_manifest(digits.int8.with_name("manifest.json"))
    assert manifest["name"] == "digits-int8"
    assert manifest["quantization"]["mode"] == "static"
    assert manifest["preprocessing"]["color_mode"] == "L"


def test_dynamic_int8_shrinks_and_keeps_accuracy(digits: Digits, tmp_path: Path) -> None:
    out = tmp_path / "dynamic.onnx"
    result = quantize_model(digits.fp32, out, QuantizeOptions(mode="dynamic", **FAST))
    assert result.size_ratio <= 0.30  # Gemm layers are rewritten to MatMul, then quantized
    assert "MatMulInteger" in result.op_histogram and "ConvInteger" in result.op_histogram
    report = evaluate_models([digits.fp32, out], digits.test_npz, max_drop=1.0, progress=False)
    assert report.passed
    assert result.latency_before_ms > 0 and result.latency_after_ms > 0
    if result.latency_after_ms > result.latency_before_ms * 1.05:
        assert any("SLOWER" in w and "ConvInteger" in w for w in result.warnings)


def test_auto_mode_prefers_static_for_conv_models_with_calibration(digits: Digits) -> None:
    model = onnx.load(str(digits.fp32))
    assert choose_mode(model, "auto", has_calibration=True)[0] == "static"
    assert choose_mode(model, "auto", has_calibration=False)[0] == "dynamic-no-conv"
    assert choose_mode(model, "dynamic", has_calibration=True)[0] == "dynamic"


def test_auto_without_calibration_keeps_convolutions_fp32(digits: Digits, tmp_path: Path) -> None:
    out = tmp_path / "auto.onnx"
    result = quantize_model(digits.fp32, out, QuantizeOptions(mode="auto", **FAST))
    assert result.mode == "dynamic-no-conv"
    assert "ConvInteger" not in result.op_histogram and "Conv" in result.op_histogram
    assert result.size_ratio < 0.35


def test_percentile_per_tensor_with_exclusions(digits: Digits, tmp_path: Path) -> None:
    calibration = calibration_for_model(digits.fp32, digits.calib_npz, limit=32)
    conv = next(n.name for n in onnx.load(str(digits.fp32)).graph.node if n.op_type == "Conv")
    out = tmp_path / "pct.onnx"
    options = QuantizeOptions(
        mode="static",
        method="percentile",
        per_channel=False,
        exclude_nodes=(conv,),
        exclude_ops=("MaxPool",),
        **FAST,
    )
    result = quantize_model(digits.fp32, out, options, calibration)
    assert result.size_ratio < 0.35
    report = evaluate_models([digits.fp32, out], digits.test_npz, progress=False)
    assert report.drop_points is not None and report.drop_points <= 2.0
    quantized_inputs = {
        n.output[0] for n in onnx.load(str(out)).graph.node if n.op_type == "DequantizeLinear"
    }
    excluded = next(n for n in onnx.load(str(out)).graph.node if n.name == conv)
    assert excluded.input[1] not in quantized_inputs  # its weight stayed FP32


def test_fp16_conversion_halves_the_weights(digits: Digits, tmp_path: Path) -> None:
    out = tmp_path / "fp16.onnx"
    result = quantize_model(digits.fp32, out, QuantizeOptions(mode="fp16", **FAST))
    assert 0.45 < result.size_ratio < 0.6
    report = evaluate_models([digits.fp32, out], digits.test_npz, max_drop=0.5, progress=False)
    assert report.passed


def test_bad_calibration_data_is_a_clear_error(digits: Digits, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 3, 32, 32), dtype=np.float32))
    with pytest.raises(
        ToolError, match=r"has shape \[4, 3, 32, 32\], the model expects \[N, 1, 28, 28\]"
    ):
        calibration_for_model(digits.fp32, wrong)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ToolError, match="no images found"):
        calibration_for_model(digits.fp32, empty)
    with pytest.raises(ToolError, match="not found"):
        calibration_for_model(digits.fp32, tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not numpy")
    with pytest.raises(ToolError, match="not a readable"):
        calibration_for_model(digits.fp32, junk)
    with pytest.raises(ToolError, match="needs calibration data"):
        quantize_model(digits.fp32, tmp_path / "s.onnx", QuantizeOptions(mode="static", **FAST))


def test_not_an_onnx_file_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_text("hello, I am not a model")
    with pytest.raises(ToolError, match="not a valid ONNX model"):
        quantize_model(fake, tmp_path / "out.onnx", QuantizeOptions(**FAST))
    with pytest.raises(ToolError, match="not found"):
        quantize_model(tmp_path / "nope.onnx", tmp_path / "out.onnx", QuantizeOptions(**FAST))


def _identity(model: Path) -> tuple[str, str]:
    manifest = read_manifest(model.with_name("manifest.json"))
    return manifest["name"], manifest["version"]


def test_quantized_models_get_their_own_name_and_publish_beside_the_fp32_model(
    digits: Digits, tmp_path: Path
) -> None:
    """FP32 digits:1 -> digits-int8:1 and digits-fp16:1 by default; --name/--model-version win."""
    quick = ("--bench-runs", "2", "--no-progress")
    int8 = tmp_path / "q" / "int8" / "model.onnx"
    static = ("--mode", "static", "--calibration", digits.calib_npz, "--calibration-limit", "32")
    assert run_cli("quantize", digits.fp32, "-o", int8, *static, *quick).returncode == 0
    assert _identity(int8) == ("digits-int8", "1")
    fp16 = tmp_path / "q" / "fp16" / "model.onnx"
    assert run_cli("quantize", digits.fp32, "-o", fp16, "--mode", "fp16", *quick).returncode == 0
    assert _identity(fp16) == ("digits-fp16", "1")
    named = tmp_path / "q" / "named" / "model.onnx"
    done = run_cli(
        "quantize", digits.fp32, "-o", named, "--mode", "fp16", "--name", "digits-small",
        "--model-version", "7", *quick,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _identity(named) == ("digits-small", "7")
    _, public = make_keys(tmp_path / "keys")
    db, artifacts = f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts"
    for model in (digits.fp32, int8):  # the registry refuses a (name, version) published twice
        bundle = tmp_path / f"{model.parent.name}.edgebundle"
        package_model(model, bundle, signing_key=public.with_suffix(".key"))
        cli_json("publish", str(bundle), "--trusted-keys", str(public), db=db, artifacts=artifacts)
    models = cli_json("models", db=db, artifacts=artifacts)
    assert sorted(m["name"] for m in models) == ["digits", "digits-int8"]


def test_dynamic_quantization_without_preprocessing_leaves_nothing_beside_the_input(
    digits: Digits, tmp_path: Path
) -> None:
    source = tmp_path / "src" / "model.onnx"
    source.parent.mkdir()
    source.write_bytes(digits.fp32.read_bytes())
    options = QuantizeOptions(mode="dynamic", preprocess=False, **FAST)
    quantize_model(source, tmp_path / "out" / "model.onnx", options)
    assert sorted(p.name for p in source.parent.iterdir()) == ["model.onnx"]
