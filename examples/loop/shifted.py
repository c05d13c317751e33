"""The kind of input the demo model was not trained on: digits moved off centre,
rotated and drawn with a thicker pen, made from scikit-learn's bundled digits (nothing
is downloaded). A camera that was knocked a little sideways produces this."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["png_bytes", "shift_digits"]


def _shift_one(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    picture = Image.fromarray(image, mode="L")
    if rng.random() < 0.5:  # a thicker pen
        picture = picture.filter(ImageFilter.MaxFilter(3))
    angle = float(rng.uniform(12.0, 25.0)) * (1 if rng.random() < 0.5 else -1)
    # 4 to 6 pixels off centre in a random direction (of 28): the training digits are
    # all centred, so the model has never seen one this far out.
    distance = float(rng.uniform(4.0, 6.0))
    direction = float(rng.uniform(0.0, 2.0 * np.pi))
    dx, dy = round(distance * np.cos(direction)), round(distance * np.sin(direction))
    moved = picture.rotate(angle, resample=Image.Resampling.BILINEAR, translate=(dx, dy))
    return np.asarray(moved, dtype=np.uint8)


def shift_digits(images: np.ndarray, seed: int) -> np.ndarray:
    """uint8 [N, 28, 28] digits -> the same digits shifted, rotated, some thickened."""
    rng = np.random.default_rng(seed)
    return np.stack([_shift_one(image, rng) for image in images])


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image, mode="L").save(buffer, "PNG", optimize=False)
    return buffer.getvalue()
