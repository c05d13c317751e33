"""Image preprocessing as a domain function: results against independent recipes, no gRPC."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edge_contracts.manifest import parse_preprocessing
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.inference.preprocessing import (
    ImagePlan,
    decode_image,
    pixels_to_tensor,
    plan_image_input,
    preprocess_image,
)

MAX_PIXELS = 40_000_000
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def plan_for(color_mode: str, layout: str, dtype: str, height: int, width: int) -> ImagePlan:
    channels = 3 if color_mode == "RGB" else 1
    pre = parse_preprocessing(
        {
            "color_mode": color_mode,
            "layout": layout,
            "mean": MEAN[:channels] if channels == 3 else [0.5],
            "std": STD[:channels] if channels == 3 else [0.5],
            "resize_filter": "bilinear",
        }
    )
    shape = (-1, channels, height, width) if layout == "NCHW" else (-1, height, width, channels)
    return plan_image_input(pre, TensorSpec(name="input", dtype=dtype, shape=shape))


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise(width: int, height: int, mode: str, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


def reference(image: Image.Image, plan: ImagePlan) -> np.ndarray:
    """The manifest recipe restated in float64: convert, resize, (x/255 - mean)/std."""
    resized = image.convert(plan.color_mode).resize((plan.width, plan.height), plan.resample)
    pixels = np.asarray(resized)
    hwc = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
    channels = hwc.shape[2]
    if plan.dtype == np.uint8:
        x: np.ndarray = hwc
    else:
        mean = np.array(MEAN if channels == 3 else [0.5], np.float64)
        std = np.array(STD if channels == 3 else [0.5], np.float64)
        x = (hwc.astype(np.float64) / 255.0 - mean) / std
    if plan.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return x[np.newaxis]


def naive_float32(pixels: np.ndarray, plan: ImagePlan) -> np.ndarray:
    """The obvious float32 recipe: astype, *=, +=, transpose, copy (uint8: no scaling)."""
    hwc = pixels if pixels.ndim == 3 else pixels[:, :, np.newaxis]
    x = hwc
    if plan.dtype != np.uint8:
        x = hwc.astype(np.float32)
        x *= plan.multiplier
        x += plan.offset
    if plan.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[np.newaxis]).astype(plan.dtype)


CASES = [
    (color, layout, dtype)
    for color in ("RGB", "L")
    for layout in ("NCHW", "NHWC")
    for dtype in ("float32", "float16", "uint8")
]


@pytest.mark.parametrize(("color_mode", "layout", "dtype"), CASES)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_preprocess_matches_float64_reference(
    color_mode: str, layout: str, dtype: str, fmt: str
) -> None:
    plan = plan_for(color_mode, layout, dtype, 24, 20)
    data = encode(noise(70, 45, "RGB", seed=1), fmt)  # < 4x: no draft, same decode
    got = preprocess_image(data, plan, MAX_PIXELS)
    source = Image.open(io.BytesIO(data))
    if fmt == "JPEG":  # libjpeg converts to the color mode while decoding
        source.draft(color_mode, (plan.width * 2, plan.height * 2))
    expected = reference(source, plan)
    assert got.shape == expected.shape
    assert got.dtype == np.dtype(dtype)
    assert got.flags.c_contiguous
    if dtype == "uint8":
        np.testing.assert_array_equal(got, expected)
    else:
        rtol = 1e-6 if dtype == "float32" else 1e-3  # float32 / float16 rounding
        np.testing.assert_allclose(got.astype(np.float64), expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(("color_mode", "layout", "dtype"), CASES)
def test_fused_normalization_is_bit_identical_to_float32_recipe(
    color_mode: str, layout: str, dtype: str
) -> None:
    plan = plan_for(color_mode, layout, dtype, 16, 16)
    image = noise(16, 16, color_mode, seed=2)
    got = preprocess_image(encode(image), plan, MAX_PIXELS)
    np.testing.assert_array_equal(got, naive_float32(np.asarray(image), plan))


@pytest.mark.parametrize(("color_mode", "layout", "dtype"), CASES)
@pytest.mark.parametrize("source_mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(16, 12), (33, 20)])
def test_pixels_equal_the_same_pixels_sent_as_png(
    color_mode: str, layout: str, dtype: str, source_mode: str, size: tuple[int, int]
) -> None:
    plan = plan_for(color_mode, layout, dtype, 12, 16)
    image = noise(*size, source_mode, seed=3)
    pixels = np.asarray(image)
    by_pixels = pixels_to_tensor(pixels, plan)
    by_png = preprocess_image(encode(image), plan, MAX_PIXELS)
    np.testing.assert_array_equal(by_pixels, by_png)
    assert by_pixels.dtype == by_png.dtype
    assert by_pixels.flags.c_contiguous
    assert not np.shares_memory(by_pixels, pixels)


def test_strided_and_batched_pixels() -> None:
    plan = plan_for("RGB", "NCHW", "float32", 12, 16)
    pixels = np.asarray(noise(16, 12, "RGB", seed=4))
    flipped = pixels[:, ::-1]  # a non-contiguous view, as a client library may hand over
    expected = naive_float32(np.ascontiguousarray(flipped), plan)
    np.testing.assert_array_equal(pixels_to_tensor(flipped, plan), expected)
    np.testing.assert_array_equal(pixels_to_tensor(flipped[np.newaxis], plan), expected)


def jpeg_sized(width: int, height: int) -> Image.Image:
    return noise(width // 8, height // 8, "RGB", seed=5).resize((width, height))


@pytest.mark.parametrize("fmt", ["JPEG", "MPO"])
def test_jpeg_at_least_4x_the_input_decodes_in_draft_mode(fmt: str) -> None:
    plan = plan_for("RGB", "NCHW", "float32", 32, 40)
    image = jpeg_sized(40 * 4, 32 * 5)
    buffer = io.BytesIO()
    if fmt == "MPO":
        image.save(buffer, "MPO", save_all=True, append_images=[image.rotate(90)])
    else:
        image.save(buffer, "JPEG")
    decoded = decode_image(buffer.getvalue(), MAX_PIXELS, ("RGB", (80, 64)))
    assert decoded.format == fmt
    assert decoded.size == (80, 80)  # 1/2 scale: still at least twice the input
    jpeg = encode(image, "JPEG")
    np.testing.assert_array_equal(
        preprocess_image(buffer.getvalue(), plan, MAX_PIXELS),
        preprocess_image(jpeg, plan, MAX_PIXELS),
    )


def test_jpeg_under_4x_the_input_decodes_at_full_size() -> None:
    # Drafting to under twice the input would change pixels beyond rounding.
    image = jpeg_sized(40 * 3, 32 * 3)
    decoded = decode_image(encode(image, "JPEG"), MAX_PIXELS, ("RGB", (80, 64)))
    assert decoded.size == (120, 96)
