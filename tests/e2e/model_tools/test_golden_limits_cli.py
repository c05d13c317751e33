"""`model-tools package` with golden samples beyond the limits a gateway enforces
(edge_contracts/bundle/golden.py: samples per input, bytes per array, bytes in total):
one `model-tools: error:` line, exit 1, no bundle written; at the limit it packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_contracts.bundle.golden import (
    MAX_GOLDEN_ARRAY_BYTES,
    MAX_GOLDEN_SAMPLES,
    MAX_GOLDEN_TOTAL_BYTES,
)
from tests.support.digits_model import assert_clean_failure, run_cli
from tests.support.model_factory import linear_classifier, pooled_rgb_classifier, write_manifest

pytestmark = pytest.mark.slow

IMAGE = (3, 1024, 1024)  # float32: 12 MiB per sample
SAMPLE_BYTES = 4 * 3 * 1024 * 1024


def twin_outputs(path: Path) -> Path:
    """[N, 3, H, W] -> two Identity outputs: the golden file holds the input three times."""
    shape: list[str | int] = ["batch", 3, "h", "w"]
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["input"], ["a"]),
            helper.make_node("Identity", ["input"], ["b"]),
        ],
        "twin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, shape),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    write_manifest(path.parent, name="twin", version="1")
    return path


def images(path: Path, count: int) -> Path:
    np.save(path, np.random.default_rng(0).random((count, *IMAGE), dtype=np.float32))
    return path


def test_more_golden_samples_than_the_limit(tmp_path: Path) -> None:
    model = linear_classifier(tmp_path / "gray" / "model.onnx")
    write_manifest(model.parent, name="gray", version="1")
    bundle = tmp_path / "gray.edgebundle"
    over = str(MAX_GOLDEN_SAMPLES + 1)

    done = run_cli("package", model, "-o", bundle, "--golden", "random", "--golden-count", over)

    assert_clean_failure(
        done, f"golden array 'in.input' has {over} samples, the limit is {MAX_GOLDEN_SAMPLES}"
    )
    assert not bundle.exists()
    at_limit = str(MAX_GOLDEN_SAMPLES)
    done = run_cli("package", model, "-o", bundle, "--golden", "random", "--golden-count", at_limit)
    assert done.returncode == 0, done.stderr
    assert bundle.exists()


def test_one_golden_array_beyond_the_limit(tmp_path: Path) -> None:
    model = pooled_rgb_classifier(tmp_path / "rgb" / "model.onnx")
    write_manifest(model.parent, name="rgb", version="1")
    count = MAX_GOLDEN_ARRAY_BYTES // SAMPLE_BYTES + 1  # 3 images: 36 MiB > 32 MiB
    bundle = tmp_path / "rgb.edgebundle"

    done = run_cli("package", model, "-o", bundle, "--golden", images(tmp_path / "x.npy", count))

    assert_clean_failure(done, f"the limit is {MAX_GOLDEN_ARRAY_BYTES}; use fewer or smaller")
    assert "golden array 'in.input' is " in done.stderr
    assert not bundle.exists()


def test_golden_arrays_together_beyond_the_limit(tmp_path: Path) -> None:
    model = twin_outputs(tmp_path / "twin" / "model.onnx")
    golden = images(tmp_path / "x.npy", 2)  # 24 MiB each, under the per-array limit
    assert 3 * 2 * SAMPLE_BYTES > MAX_GOLDEN_TOTAL_BYTES
    bundle = tmp_path / "twin.edgebundle"

    done = run_cli("package", model, "-o", bundle, "--golden", golden, "--golden-count", "2")

    assert_clean_failure(done, f"the limit is {MAX_GOLDEN_TOTAL_BYTES}; use fewer or smaller")
    assert "golden samples are " in done.stderr
    assert not bundle.exists()
