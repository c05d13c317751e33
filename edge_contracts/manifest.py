"""The serving manifest: how raw inputs become model tensors and outputs become classes.

A model version folder ``MODEL_ROOT/<name>/<version>/`` holds ``model.onnx`` and,
optionally, ``manifest.json`` (format in docs/manifest.md). Without a manifest the
model serves tensor input only, with names, shapes and dtypes read from the ONNX
file. The same reader is used for signed bundles (model_tools, orchestrator), so it
must stay free of onnxruntime and torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge_contracts.errors import ManifestError
from edge_contracts.json_limits import check_json_depth

MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.txt"
# As for a bundle's manifest.json (MAX_MANIFEST_BYTES, edge_contracts/bundle/format.py).
MAX_SERVING_MANIFEST_BYTES = 1 << 20

ColorMode = Literal["RGB", "L"]
Layout = Literal["NCHW", "NHWC"]
OutputKind = Literal["logits", "probabilities"]
RESIZE_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
INPUT_DTYPES = ("float32", "float16", "uint8")


@dataclass(frozen=True)
class Preprocessing:
    """Image -> tensor recipe. ``input_size`` is (height, width) and is only
    needed when the ONNX input's spatial dimensions are dynamic."""

    input_size: tuple[int, int] | None = None
    color_mode: ColorMode = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    layout: Layout = "NCHW"
    resize_filter: str = "bilinear"
    input_dtype: str = "float32"

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "L" else 3


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching knobs (used by the batcher; defaults are conservative)."""

    enabled: bool | None = None
    max_batch_size: int = 8
    max_queue_delay_us: int = 500
    preferred_batch_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Manifest:
    """What the gateway knows about one model version beyond its ONNX file."""

    name: str = ""
    version: str = ""
    preprocessing: Preprocessing | None = None
    output_kind: OutputKind = "logits"
    labels: tuple[str, ...] = ()
    batching: BatchingConfig | None = None  # None: the server's defaults apply
    extra: dict[str, Any] = field(default_factory=dict)

    def label_for(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        if self.name:
            data["name"] = self.name
        if self.version:
            data["version"] = self.version
        if self.preprocessing is not None:
            p = self.preprocessing
            data["preprocessing"] = {
                "input_size": list(p.input_size) if p.input_size else None,
                "color_mode": p.color_mode,
                "scale": p.scale,
                "mean": list(p.mean),
                "std": list(p.std),
                "layout": p.layout,
                "resize_filter": p.resize_filter,
                "input_dtype": p.input_dtype,
            }
        data["output_kind"] = self.output_kind
        data["labels"] = list(self.labels)
        if self.batching is not None:
            b = self.batching
            data["batching"] = {
                "max_batch_size": b.max_batch_size,
                "max_queue_delay_us": b.max_queue_delay_us,
                "preferred_batch_sizes": list(b.preferred_batch_sizes),
            }
            if b.enabled is not None:
                data["batching"]["enabled"] = b.enabled
        return data


def _is_int(value: Any) -> bool:
    """A JSON integer: ``true`` and ``false`` are not (Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _number_list(value: Any, what: str) -> tuple[float, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float
        raise ManifestError(
            f"{what} must be a number or a list of numbers, got {value!r}"
        ) from None
    if not numbers or not all(math.isfinite(n) for n in numbers):
        raise ManifestError(f"{what} must hold finite numbers, got {value!r}")
    return numbers


def parse_preprocessing(raw: Any) -> Preprocessing:
    if not isinstance(raw, dict):
        raise ManifestError("'preprocessing' must be an object")
    size = raw.get("input_size")
    input_size: tuple[int, int] | None = None
    if size is not None:
        if _is_int(size):
            size = [size, size]
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(_is_int(s) and 0 < s <= 8192 for s in size)
        ):
            raise ManifestError(
                f"preprocessing.input_size must be [height, width] in 1..8192, got {size!r}"
            )
        input_size = (size[0], size[1])
    color_mode = raw.get("color_mode", "RGB")
    if color_mode not in ("RGB", "L"):
        raise ManifestError(f"preprocessing.color_mode must be 'RGB' or 'L', got {color_mode!r}")
    layout = raw.get("layout", "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise ManifestError(f"preprocessing.layout must be 'NCHW' or 'NHWC', got {layout!r}")
    resize_filter = raw.get("resize_filter", "bilinear")
    if resize_filter not in RESIZE_FILTERS:
        raise ManifestError(
            f"preprocessing.resize_filter must be one of {', '.join(RESIZE_FILTERS)}, "
            f"got {resize_filter!r}"
        )
    input_dtype = raw.get("input_dtype", "float32")
    if input_dtype not in INPUT_DTYPES:
        raise ManifestError(
            f"preprocessing.input_dtype must be one of {', '.join(INPUT_DTYPES)}, "
            f"got {input_dtype!r}"
        )
    channels = 1 if color_mode == "L" else 3
    mean = _number_list(raw.get("mean", 0.0), "preprocessing.mean")
    std = _number_list(raw.get("std", 1.0), "preprocessing.std")
    for what, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise ManifestError(
                f"preprocessing.{what} needs 1 or {channels} values for color_mode "
                f"{color_mode}, got {len(values)}"
            )
    if any(s == 0 for s in std):
        raise ManifestError("preprocessing.std must not contain 0")
    (scale,) = _number_list(raw.get("scale", 1.0 / 255.0), "preprocessing.scale")[:1]
    return Preprocessing(
        input_size=input_size,
        color_mode=color_mode,
        scale=scale,
        mean=mean,
        std=std,
        layout=layout,
        resize_filter=resize_filter,
        input_dtype=input_dtype,
    )


def parse_batching(raw: Any) -> BatchingConfig | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ManifestError("'batching' must be an object")
    enabled = raw.get("enabled")
    max_batch = raw.get("max_batch_size", 8)
    delay = raw.get("max_queue_delay_us", 500)
    preferred = raw.get("preferred_batch_sizes", [])
    if enabled is not None and not isinstance(enabled, bool):
        raise ManifestError("batching.enabled must be true or false")
    if not _is_int(max_batch) or not 1 <= max_batch <= 1024:
        raise ManifestError(f"batching.max_batch_size must be 1..1024, got {max_batch!r}")
    if not _is_int(delay) or not 0 <= delay <= 1_000_000:
        raise ManifestError(f"batching.max_queue_delay_us must be 0..1000000, got {delay!r}")
    if not isinstance(preferred, list) or not all(
        _is_int(p) and 1 <= p <= max_batch for p in preferred
    ):
        raise ManifestError("batching.preferred_batch_sizes must be integers in 1..max_batch_size")
    return BatchingConfig(enabled, max_batch, delay, tuple(sorted(set(preferred))))


def parse_manifest(data: Any) -> Manifest:
    """Validate a decoded manifest.json document; raises ManifestError with the field at fault."""
    if not isinstance(data, dict):
        raise ManifestError("manifest must be a JSON object")
    output_kind = data.get("output_kind", "logits")
    if output_kind not in ("logits", "probabilities"):
        raise ManifestError(f"output_kind must be 'logits' or 'probabilities', got {output_kind!r}")
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ManifestError("labels must be a list of strings")
    raw_pre = data.get("preprocessing")
    known = {"name", "version", "preprocessing", "output_kind", "labels", "batching"}
    return Manifest(
        name=str(data.get("name", "")),
        version=str(data.get("version", "")),
        preprocessing=parse_preprocessing(raw_pre) if raw_pre is not None else None,
        output_kind=output_kind,
        labels=tuple(labels),
        batching=parse_batching(data.get("batching")),
        extra={k: v for k, v in data.items() if k not in known},
    )


def load_manifest(version_dir: Path) -> Manifest:
    """Read ``manifest.json`` (and ``labels.txt`` when the manifest has no labels).

    A folder without a manifest gets an empty one: tensor input only.
    """
    path = version_dir / MANIFEST_FILE
    manifest = Manifest()
    if path.is_file():
        try:
            raw = path.read_bytes()
            if len(raw) > MAX_SERVING_MANIFEST_BYTES:
                raise ManifestError(f"{path} is {len(raw)} bytes, the limit is 1 MiB")
            # Before json.loads: deep nesting would raise RecursionError, not ManifestError.
            check_json_depth(raw, str(path), ManifestError)
            data = json.loads(raw.decode("utf-8"))
        # ValueError covers JSONDecodeError and an integer beyond Python's digit limit.
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc})") from None
        try:
            manifest = parse_manifest(data)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from None
    labels_path = version_dir / LABELS_FILE
    if not manifest.labels and labels_path.is_file():
        labels = tuple(
            line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines()
        )
        manifest = Manifest(
            name=manifest.name,
            version=manifest.version,
            preprocessing=manifest.preprocessing,
            output_kind=manifest.output_kind,
            labels=tuple(label for label in labels if label),
            batching=manifest.batching,
            extra=manifest.extra,
        )
    return manifest
