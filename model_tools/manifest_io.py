"""Reading and writing the serving manifest that travels next to a model file.

The schema is the gateway's (``edge_contracts.manifest``); this module only
builds, validates and stores documents in it. A model ``model.onnx`` has its
manifest in ``manifest.json`` beside it (a serving folder); any other file
``foo.onnx`` uses ``foo.manifest.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from edge_contracts.atomic_files import PUBLIC_FILE, write_bytes_atomic
from edge_contracts.errors import ManifestError
from edge_contracts.manifest import MANIFEST_FILE, parse_manifest
from model_tools import __version__
from model_tools.errors import ToolError
from model_tools.onnx_model import TensorSpec

__all__ = [
    "build_manifest",
    "find_manifest",
    "image_preprocessing",
    "manifest_path_for",
    "parse_labels",
    "producer_info",
    "read_manifest",
    "write_json_atomic",
]


def manifest_path_for(model_path: Path) -> Path:
    """Where the manifest of ``model_path`` lives."""
    if model_path.name == "model.onnx":
        return model_path.with_name(MANIFEST_FILE)
    return model_path.with_name(f"{model_path.stem}.manifest.json")


def read_manifest(path: Path) -> dict[str, Any]:
    """Load and validate a manifest file; errors name the file and the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolError(f"manifest not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolError(f"{path}: not a readable JSON manifest ({exc})") from None
    try:
        parse_manifest(data)
    except ManifestError as exc:
        raise ToolError(f"{path}: {exc}") from None
    if not isinstance(data, dict):  # parse_manifest already refuses this
        raise ToolError(f"{path}: manifest must be a JSON object")
    return data


def find_manifest(model_path: Path, explicit: Path | None = None) -> dict[str, Any] | None:
    """The manifest given explicitly, else the one next to the model, else None."""
    if explicit is not None:
        return read_manifest(explicit)
    candidate = manifest_path_for(model_path)
    return read_manifest(candidate) if candidate.is_file() else None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (keys in insertion order) atomically, mode 0666 - umask."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"), PUBLIC_FILE)


def parse_labels(value: str | None) -> list[str]:
    """Labels from a text file (one per line) or a comma-separated list."""
    if not value:
        return []
    path = Path(value)
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [line.strip() for line in lines if line.strip()]
    return [item.strip() for item in value.split(",") if item.strip()]


def image_preprocessing(
    input_shape: Sequence[int | str | None],
    *,
    layout: str = "NCHW",
    scale: float = 1.0 / 255.0,
    mean: Sequence[float] = (0.0,),
    std: Sequence[float] = (1.0,),
    resize_filter: str = "bilinear",
    input_size: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """A preprocessing block for an image-like input ``[N,C,H,W]``/``[N,H,W,C]``.

    Returns None when the shape does not look like 1- or 3-channel images.
    """
    if len(input_shape) != 4:
        return None
    channels = input_shape[1] if layout == "NCHW" else input_shape[3]
    if channels not in (1, 3):
        return None
    if input_size is None:
        h, w = (input_shape[2], input_shape[3]) if layout == "NCHW" else input_shape[1:3]
        if isinstance(h, int) and isinstance(w, int):
            input_size = (h, w)
    return {
        "input_size": list(input_size) if input_size else None,
        "color_mode": "L" if channels == 1 else "RGB",
        "scale": float(scale),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "layout": layout,
        "resize_filter": resize_filter,
        "input_dtype": "float32",
    }


def producer_info(tool: str) -> dict[str, Any]:
    """The ``producer`` block: which tool and library versions made the file."""
    info: dict[str, Any] = {"tool": tool, "model_tools": __version__}
    for package in ("torch", "onnx", "onnxruntime"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return info


def build_manifest(
    *,
    name: str,
    version: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    preprocessing: dict[str, Any] | None,
    labels: Sequence[str] = (),
    output_kind: str = "logits",
    producer: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A validated serving manifest document with the model's signature."""
    data: dict[str, Any] = {"name": name, "version": version}
    if preprocessing is not None:
        data["preprocessing"] = preprocessing
    data["output_kind"] = output_kind
    data["labels"] = list(labels)
    data["inputs"] = [spec.to_dict() for spec in inputs]
    data["outputs"] = [spec.to_dict() for spec in outputs]
    if producer is not None:
        data["producer"] = producer
    data.update(extra or {})
    try:
        parse_manifest(data)
    except ManifestError as exc:
        raise ToolError(f"invalid manifest: {exc}") from None
    return data
