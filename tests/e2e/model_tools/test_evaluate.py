"""Evaluation: the manifest's preprocessing, folder and .npz datasets, the accuracy gate."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image

from edge_contracts.manifest import Preprocessing
from model_tools.datasets import preprocess_image
from model_tools.errors import ToolError
from model_tools.evaluate import evaluate_models, record_evaluation, topk_accuracy
from model_tools.manifest_io import read_manifest
from tests.support.digits_model import Digits


def _broken_copy(digits: Digits, folder: Path) -> Path:
    """The FP32 model with a huge bias on class 3: it predicts 3 for almost everything."""
    model = onnx.load(str(digits.fp32))
    last_gemm = [n for n in model.graph.node if n.op_type == "Gemm"][-1]
    bias = next(i for i in model.graph.initializer if i.name == last_gemm.input[2])
    values = numpy_helper.to_array(bias).copy()
    values[3] += 1000.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    target = folder / "model.onnx"
    folder.mkdir(parents=True)
    onnx.save(model, str(target))
    shutil.copy(digits.fp32.with_name("manifest.json"), folder / "manifest.json")
    return target


def test_preprocessing_follows_the_manifest_exactly() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    pre = Preprocessing(
        color_mode="RGB", scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
    )
    x = preprocess_image(image, pre, (10, 12))
    resized = np.asarray(image.resize((12, 10), Image.Resampling.BILINEAR), dtype=np.float32)
    expected = (resized / 255 - np.array(pre.mean)) / np.array(pre.std)
    assert x.shape == (3, 10, 12) and x.dtype == np.float32
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), atol=1e-5)
    nhwc = Preprocessing(color_mode="L", layout="NHWC", resize_filter="nearest")
    y = preprocess_image(image, nhwc, (20, 30))
    gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
    assert y.shape == (20, 30, 1)
    np.testing.assert_allclose(y[:, :, 0], gray, atol=1e-6)


def test_image_folder_and_npz_give_the_same_accuracy(digits: Digits, tmp_path: Path) -> None:
    count = 120
    images, labels = digits.data.test_images[:count], digits.data.test_labels[:count]
    folder = tmp_path / "images"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / str(label) / f"{i:04d}.png")
    subset = tmp_path / "subset.npz"
    np.savez(subset, x=images, y=labels)
    from_folder = evaluate_models([digits.fp32], folder, progress=False)
    from_npz = evaluate_models([digits.fp32], subset, progress=False)
    assert from_folder.samples == from_npz.samples == count
    assert from_folder.scores[0].top1 == pytest.approx(from_npz.scores[0].top1)
    assert from_folder.scores[0].top1 > 0.9


def test_gate_passes_for_int8_and_fails_for_a_broken_model(digits: Digits, tmp_path: Path) -> None:
    good = evaluate_models(
        [digits.fp32, digits.int8], digits.test_npz, max_drop=1.0, progress=False
    )
    assert good.passed and good.to_dict()["passed"] is True
    broken = _broken_copy(digits, tmp_path / "broken" / "1")
    bad = evaluate_models([digits.fp32, broken], digits.test_npz, max_drop=1.0, progress=False)
    assert not bad.passed
    assert bad.drop_points is not None and bad.drop_points > 50
    assert bad.agreement is not None and bad.agreement < 0.3
    loose = evaluate_models([digits.fp32, broken], digits.test_npz, max_drop=100, progress=False)
    assert loose.passed


def test_record_evaluation_in_the_manifest(digits: Digits, tmp_path: Path) -> None:
    folder = tmp_path / "copy" / "1"
    folder.mkdir(parents=True)
    model = folder / "model.onnx"
    shutil.copy(digits.fp32, model)
    shutil.copy(digits.fp32.with_name("manifest.json"), folder / "manifest.json")
    report = evaluate_models([model], digits.test_npz, limit=50, progress=False)
    record_evaluation(model, report)
    evaluation = read_manifest(folder / "manifest.json")["evaluation"]
    assert evaluation["samples"] == 50 and evaluation["top1"] == round(report.scores[0].top1, 6)


def test_bad_datasets_are_clear_errors(digits: Digits, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ToolError, match="no labelled images found"):
        evaluate_models([digits.fp32], empty, progress=False)
    (empty / "cats").mkdir()
    with pytest.raises(ToolError, match="not among the manifest's labels"):
        evaluate_models([digits.fp32], empty, progress=False)
    mismatched = tmp_path / "mismatch.npz"
    np.savez(mismatched, x=digits.data.test_images[:10], y=np.zeros(3, dtype=np.int64))
    with pytest.raises(ToolError, match="'y' must be 10 integer class ids"):
        evaluate_models([digits.fp32], mismatched, progress=False)
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, x=digits.data.test_images[:10])
    with pytest.raises(ToolError, match="has no array 'y'"):
        evaluate_models([digits.fp32], no_y, progress=False)
    with pytest.raises(ToolError, match="--max-drop needs two models"):
        evaluate_models([digits.fp32], digits.test_npz, max_drop=1.0, progress=False)
    with pytest.raises(ToolError, match="dataset not found"):
        evaluate_models([digits.fp32], tmp_path / "nothing", progress=False)


def test_topk_accuracy() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, labels, 5) == 1.0
