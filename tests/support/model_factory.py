"""Real ONNX models built in the tests with onnx.helper (no torch needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def linear_classifier(
    path: Path,
    channels: int = 1,
    size: int = 8,
    classes: int = 10,
    seed: int = 0,
    dynamic_hw: bool = False,
) -> Path:
    """[N, C, H, W] float32 -> Flatten -> MatMul -> Add -> logits [N, classes]."""
    rng = np.random.default_rng(seed)
    features = channels * size * size
    weights = rng.normal(0, 1, (features, classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, (classes,)).astype(np.float32)
    h_dim: Any = "height" if dynamic_hw else size
    w_dim: Any = "width" if dynamic_hw else size
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "linear_classifier",
        [
            helper.make_tensor_value_info(
                "input", TensorProto.FLOAT, ["batch", channels, h_dim, w_dim]
            )
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    return _save(graph, path)


def pooled_rgb_classifier(path: Path, classes: int = 4, seed: int = 1) -> Path:
    """[N, 3, H, W] (dynamic H, W) -> GlobalAveragePool -> Flatten -> MatMul -> logits."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 3, (3, classes)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pooled_rgb",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        [numpy_helper.from_array(weights, "W")],
    )
    return _save(graph, path)


def slow_model(path: Path, matrix: int = 1024, repeats: int = 12, rows: int = 2048) -> Path:
    """[N, matrix] float32 -> tiled to `rows` rows -> `repeats` chained MatMuls -> mean.

    About half a second of single-thread CPU work per call: long enough to observe
    requests in flight (drain, overload) without slowing the suite much.
    """
    rng = np.random.default_rng(2)
    weights = (rng.normal(0, 1, (matrix, matrix)) / np.sqrt(matrix)).astype(np.float32)
    nodes = [helper.make_node("Tile", ["input", "repeats"], ["tiled"])]
    current = "tiled"
    for i in range(repeats):
        nodes.append(helper.make_node("MatMul", [current, "W"], [f"h{i}"]))
        current = f"h{i}"
    nodes.append(helper.make_node("ReduceMean", [current], ["logits"], axes=[0], keepdims=1))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, matrix])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, matrix])],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.array([rows, 1], np.int64), "repeats"),
        ],
    )
    return _save(graph, path)


def write_manifest(version_dir: Path, **fields: Any) -> None:
    (version_dir / "manifest.json").write_text(json.dumps(fields, indent=2), encoding="utf-8")


GRAY_PREPROCESSING = {
    "color_mode": "L",
    "scale": 1 / 255,
    "mean": [0.5],
    "std": [0.5],
    "layout": "NCHW",
    "resize_filter": "bilinear",
}
RGB_PREPROCESSING = {
    "input_size": [16, 16],
    "color_mode": "RGB",
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "layout": "NCHW",
    "resize_filter": "bilinear",
}


def build_model_root(root: Path) -> Path:
    """Two image models (gray 8x8 with labels; RGB with dynamic size) and a tensor-only one."""
    linear_classifier(root / "gray" / "1" / "model.onnx", seed=10)
    linear_classifier(root / "gray" / "2" / "model.onnx", seed=20)
    write_manifest(
        root / "gray" / "2",
        name="gray",
        version="2",
        preprocessing=GRAY_PREPROCESSING,
        output_kind="logits",
        labels=[f"class-{i}" for i in range(10)],
    )
    pooled_rgb_classifier(root / "rgb" / "1" / "model.onnx")
    write_manifest(root / "rgb" / "1", preprocessing=RGB_PREPROCESSING, labels=["r", "g", "b", "k"])
    linear_classifier(root / "tensoronly" / "7" / "model.onnx", channels=2, size=4, classes=3)
    return root


def faulty_on_real_input(path: Path, seed: int = 40) -> Path:
    """Same signature as linear_classifier(size=8); runs on zeros (warm-up) but fails on
    any real image: a Gather whose index is derived from the input goes out of bounds."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1, (64, 10)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("ReduceSum", ["input"], ["total"], keepdims=0),
        helper.make_node("Abs", ["total"], ["magnitude"]),
        helper.make_node("Cast", ["magnitude"], ["index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["one", "index"], ["picked"], axis=0),
        helper.make_node("Mul", ["picked", "zero"], ["nothing"]),
        helper.make_node("Add", ["mm", "nothing"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "faulty",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(np.array([1.0], np.float32), "one"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    return _save(graph, path)


def slow_classifier(path: Path, rows: int = 1024, seed: int = 41) -> Path:
    """Same signature as linear_classifier(size=8) but with tens of ms of hidden work."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1, (64, 10)).astype(np.float32)
    heavy = (rng.normal(0, 1, (64, 64)) / 8).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Tile", ["flat", "repeats"], ["tiled"]),
    ]
    current = "tiled"
    for i in range(400):
        nodes.append(helper.make_node("MatMul", [current, "H"], [f"h{i}"]))
        current = f"h{i}"
    nodes += [
        helper.make_node("ReduceMean", [current], ["busy"], keepdims=0),
        helper.make_node("Mul", ["busy", "zero"], ["nothing"]),
        helper.make_node("Add", ["mm", "nothing"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(heavy, "H"),
            numpy_helper.from_array(np.array([rows, 1], np.int64), "repeats"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
    return _save(graph, path)


def edited_linear(
    source: Path,
    path: Path,
    edit: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
) -> Path:
    """A copy of a linear_classifier with its weights W [features, classes] and bias B
    changed by ``edit`` (re-quantized, two classes swapped, ...)."""
    model = onnx.load(str(source))
    found = {t.name: t for t in model.graph.initializer}
    weights, bias = edit(numpy_helper.to_array(found["W"]), numpy_helper.to_array(found["B"]))
    found["W"].CopyFrom(numpy_helper.from_array(weights.astype(np.float32), "W"))
    found["B"].CopyFrom(numpy_helper.from_array(bias.astype(np.float32), "B"))
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def requantized(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same weights through float16 and back: what re-quantizing does to a model."""
    return weights.astype(np.float16).astype(np.float32), bias.astype(np.float16)


def swap_classes(first: int, second: int) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Swap two output rows of the last layer: as confident as before, wrong classes."""

    def edit(weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = list(range(weights.shape[1]))
        order[first], order[second] = second, first
        return weights[:, order], bias[order]

    return edit


def slowed_linear(source: Path, path: Path, rows: int = 256, depth: int = 400) -> Path:
    """A copy of a linear_classifier that answers exactly the same, with milliseconds of
    hidden work added (a chain of MatMuls whose result is multiplied by zero)."""
    model = onnx.load(str(source))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["fast" if name == "logits" else name for name in node.output]
    heavy = (np.random.default_rng(41).normal(0, 1, (64, 64)) / 8).astype(np.float32)
    nodes = [helper.make_node("Tile", ["flat", "repeats"], ["tiled"])]
    current = "tiled"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [current, "H"], [f"h{i}"]))
        current = f"h{i}"
    nodes += [
        helper.make_node("ReduceMean", [current], ["busy"], keepdims=0),
        helper.make_node("Mul", ["busy", "zero"], ["nothing"]),
        helper.make_node("Add", ["fast", "nothing"], ["logits"]),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(
        [
            numpy_helper.from_array(heavy, "H"),
            numpy_helper.from_array(np.array([rows, 1], np.int64), "repeats"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ]
    )
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
