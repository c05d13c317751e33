"""Datasets for calibration and evaluation, and the manifest's image preprocessing.

Preprocessing mirrors the gateway exactly: decode with PIL, convert to the colour
mode, resize to (width, height) with the manifest's filter, uint8 -> float32 *
scale, (x - mean) / std per channel, then the layout. Arrays in ``.npy``/``.npz``
files are either uint8 images (preprocessed the same way) or ready float tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_contracts.manifest import Preprocessing
from model_tools.errors import ToolError, require_file

__all__ = [
    "IMAGE_SUFFIXES",
    "LabelledData",
    "as_model_input",
    "load_array_file",
    "load_calibration_data",
    "load_labelled_data",
    "preprocess_image",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
Dims = Sequence[int | str | None]


@dataclass(frozen=True)
class LabelledData:
    """Model-ready inputs ``x`` (float32, batch first), int64 labels and class names."""

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]


def _target_size(pre: Preprocessing, input_shape: Dims) -> tuple[int, int]:
    if pre.input_size is not None:
        return pre.input_size
    if len(input_shape) == 4:
        h, w = (input_shape[2], input_shape[3]) if pre.layout == "NCHW" else input_shape[1:3]
        if isinstance(h, int) and isinstance(w, int):
            return h, w
    raise ToolError(
        "the image size is unknown: the model's spatial dimensions are dynamic and the "
        "manifest has no preprocessing.input_size"
    )


def preprocess_image(image: Image.Image, pre: Preprocessing, size: tuple[int, int]) -> np.ndarray:
    """One decoded image -> float32 tensor without the batch axis ([C,H,W] or [H,W,C])."""
    height, width = size
    converted = image.convert(pre.color_mode)
    resized = converted.resize((width, height), _FILTERS[pre.resize_filter])
    pixels = np.asarray(resized, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    x: np.ndarray = pixels.astype(np.float32) * np.float32(pre.scale)
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    x = (x - mean) / std
    if pre.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _open_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (UnidentifiedImageError, OSError) as exc:
        raise ToolError(f"{path}: not a readable image ({exc})") from None


def _check_shape(x: np.ndarray, input_shape: Dims, what: str) -> np.ndarray:
    expected = list(input_shape[1:])
    ok = x.ndim == len(input_shape) and all(
        not isinstance(e, int) or e == a for e, a in zip(expected, x.shape[1:], strict=True)
    )
    if not ok:
        want = ", ".join(str(e) if isinstance(e, int) else "?" for e in expected)
        raise ToolError(f"{what} has shape {list(x.shape)}, the model expects [N, {want}]")
    return np.ascontiguousarray(x, dtype=np.float32)


def as_model_input(
    x: np.ndarray, pre: Preprocessing | None, input_shape: Dims, what: str = "data"
) -> np.ndarray:
    """uint8 images [N,H,W(,C)] are preprocessed; float arrays must already fit the input."""
    if x.dtype == np.uint8 and pre is not None and x.ndim in (3, 4):
        size = _target_size(pre, input_shape)
        x = np.stack([preprocess_image(Image.fromarray(img), pre, size) for img in x])
    elif x.dtype.kind not in "fiu":
        raise ToolError(f"{what} has dtype {x.dtype}, expected numbers")
    if len(x) == 0:
        raise ToolError(f"{what} is empty")
    return _check_shape(x, input_shape, what)


def load_array_file(path: Path, key: str) -> np.ndarray:
    """The array in a .npy file, or array ``key`` of a .npz file."""
    require_file(path, "array file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ToolError(f"{path}: not a readable .npy/.npz file ({exc})") from None
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if key not in loaded.files:
            found = ", ".join(loaded.files) or "nothing"
            raise ToolError(f"{path} has no array {key!r} (found: {found})")
        try:
            return np.asarray(loaded[key])
        except (OSError, ValueError) as exc:
            raise ToolError(f"{path}: cannot read array {key!r} ({exc})") from None


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_calibration_data(
    source: Path,
    pre: Preprocessing | None,
    input_shape: Dims,
    limit: int | None = None,
) -> np.ndarray:
    """Calibration inputs from an image folder (searched recursively) or a .npy/.npz file."""
    if not source.exists():
        raise ToolError(f"calibration data not found: {source}")
    if source.is_dir():
        if pre is None:
            raise ToolError("an image folder needs a manifest with preprocessing (see --manifest)")
        files = _image_files(source)[:limit]
        if not files:
            raise ToolError(f"no images found in {source}")
        size = _target_size(pre, input_shape)
        return np.stack([preprocess_image(_open_image(f), pre, size) for f in files])
    raw = load_array_file(source, "x")
    return as_model_input(raw[:limit], pre, input_shape, f"calibration data {source}")


def _class_index(names: list[str], labels: Sequence[str], root: Path) -> dict[str, int]:
    if labels and all(name in labels for name in names):
        return {name: list(labels).index(name) for name in names}
    if labels:
        unknown = sorted(set(names) - set(labels))
        raise ToolError(f"{root}: class folders {unknown} are not among the manifest's labels")
    return {name: i for i, name in enumerate(names)}


def load_labelled_data(
    source: Path,
    pre: Preprocessing | None,
    input_shape: Dims,
    labels: Sequence[str] = (),
    limit: int | None = None,
) -> LabelledData:
    """An image folder with one subfolder per class, or an ``.npz`` with ``x`` and ``y``."""
    if not source.exists():
        raise ToolError(f"dataset not found: {source}")
    if source.is_file():
        x = as_model_input(load_array_file(source, "x")[:limit], pre, input_shape, f"{source} 'x'")
        y = load_array_file(source, "y")[:limit]
        if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu":
            raise ToolError(f"{source}: 'y' must be {len(x)} integer class ids")
        names = tuple(labels) or tuple(str(i) for i in range(int(y.max()) + 1))
        return LabelledData(x, y.astype(np.int64), names)
    if pre is None:
        raise ToolError("an image folder needs a manifest with preprocessing (see --manifest)")
    class_dirs = sorted(p.name for p in source.iterdir() if p.is_dir())
    index = _class_index(class_dirs, labels, source)
    size = _target_size(pre, input_shape)
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for name in class_dirs:
        for file in _image_files(source / name):
            xs.append(preprocess_image(_open_image(file), pre, size))
            ys.append(index[name])
    if not xs:
        raise ToolError(f"no labelled images found in {source} (expected <class>/<image> files)")
    x, y = np.stack(xs)[:limit], np.asarray(ys, dtype=np.int64)[:limit]
    names = tuple(labels) or tuple(class_dirs)
    return LabelledData(_check_shape(x, input_shape, str(source)), y, names)
