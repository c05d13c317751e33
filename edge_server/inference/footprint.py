"""How many bytes one call will hold, worked out before anything is decoded.

The memory budget (edge_server/scheduling/admission.py) is charged with this estimate
at admission, on the event loop, so it must cost microseconds whatever the bytes are.
Pillow's ``Image.open`` is not that cheap on hostile input (a PNG's zTXt/iCCP chunks
before the pixels are inflated, a JPEG's APP segments read), so the image size comes
from the fixed header fields of each accepted format instead: PNG IHDR, GIF logical
screen, BMP info header, WebP VP8/VP8L/VP8X, and the JPEG SOF found by walking at most
``MAX_JPEG_SEGMENTS`` segment lengths without reading their data. Width x height is
capped by ``max_image_pixels`` (a bigger image is refused by the decoder anyway).

An image whose size cannot be read this way is charged as the largest image allowed;
the decoder in edge_server/inference/preprocessing.py stays the one judge of validity.

The charge of an image: payload twice (the request message and the Python bytes taken
from it both live until the call ends) + decoded image (Pillow holds L/P in 1 byte a pixel,
16-bit gray in 2, everything else in 4, RGB included) + its conversion to the model's
color mode when that differs + the model input row + the model outputs. A JPEG much
larger than the model input is decoded at 1/2, 1/4 or 1/8 scale (draft mode), and is
charged at that scale.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.inference.preprocessing import ImagePlan

MAX_JPEG_SEGMENTS = 64  # real files have a handful before SOF; beyond: size unknown
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
PAYLOAD_COPIES = 2  # the request message and the bytes object read from it
_WIDE = 4  # bytes a pixel of Pillow's RGB/RGBA/CMYK/I/F images


class ImageHeader(NamedTuple):
    width: int
    height: int
    pixel_bytes: int  # what one decoded pixel takes in Pillow
    jpeg: bool


def _header(width: int, height: int, pixel_bytes: int, jpeg: bool = False) -> ImageHeader:
    return ImageHeader(width, height, pixel_bytes, jpeg)


def _png(data: bytes) -> ImageHeader | None:
    if len(data) < 26 or data[12:16] != b"IHDR":
        return None
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    gray_or_palette = color in (0, 3)
    pixel = (2 if depth == 16 else 1) if gray_or_palette else _WIDE
    return _header(width, height, pixel)


def _jpeg(data: bytes) -> ImageHeader | None:
    at = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        while at < len(data) and data[at] == 0xFF:  # fill bytes before a marker
            at += 1
        if at + 8 > len(data):
            return None
        marker = data[at]
        if marker in _JPEG_SOF:
            height, width, components = struct.unpack(">HHB", data[at + 4 : at + 9])
            return _header(width, height, 1 if components == 1 else _WIDE, jpeg=True)
        (length,) = struct.unpack(">H", data[at + 1 : at + 3])
        at += 1 + length
    return None


def _webp(data: bytes) -> ImageHeader | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    elif chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 " and len(data) >= 30:
        width = int.from_bytes(data[26:28], "little") & 0x3FFF
        height = int.from_bytes(data[28:30], "little") & 0x3FFF
    else:
        return None
    return _header(width, height, _WIDE)


def read_header(data: bytes) -> ImageHeader | None:
    """Width, height and decoded pixel size from the first bytes; None when unknown."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _png(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            width, height = struct.unpack("<HH", data[6:10])
            return _header(width, height, _WIDE)  # frames may turn RGB(A) in Pillow
        if data.startswith(b"BM") and len(data) >= 30:
            width, height, _, bits = struct.unpack("<iiHH", data[18:30])
            return _header(abs(width), abs(height), 1 if bits <= 8 else _WIDE)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp(data)
    except struct.error:
        return None
    return None


def _draft_scale(header: ImageHeader, plan: ImagePlan) -> int:
    """The scale libjpeg decodes at (preprocessing.preprocess_image asks for 2x the
    model's size, and draft keeps both sides at least that)."""
    width, height = header.width, header.height
    for scale in (8, 4, 2):
        if width // scale >= plan.width * 2 and height // scale >= plan.height * 2:
            return scale
    return 1


def input_row_bytes(plan: ImagePlan) -> int:
    """One row of the model input built from an image (float32, or the model's type)."""
    channels = 1 if plan.color_mode == "L" else 3
    return plan.height * plan.width * channels * max(4, plan.dtype.itemsize)


def output_bytes(outputs: Sequence[TensorSpec], rows: int) -> int:
    """The model's outputs for ``rows`` batch rows (unknown axes counted as 1)."""
    total = 0
    for spec in outputs:
        dims = [rows if i == 0 and d == -1 else max(1, d) for i, d in enumerate(spec.shape)]
        itemsize = np.dtype(spec.dtype).itemsize if spec.dtype != "object" else 8
        total += math.prod(dims) * itemsize
    return total


def image_bytes(data: bytes, plan: ImagePlan, max_pixels: int) -> int:
    """Payload + decoded image + color conversion + model input row, for one image."""
    header = read_header(data)
    if header is None:
        pixels, pixel_bytes, scale = max_pixels, _WIDE, 1
    else:
        width, height, pixel_bytes, jpeg = header
        scale = _draft_scale(header, plan) if jpeg else 1
        pixels = min(max_pixels, (width // scale) * (height // scale))
    converted = 1 if plan.color_mode == "L" else _WIDE
    conversion = pixels * converted if converted != pixel_bytes else 0
    payload = PAYLOAD_COPIES * len(data)
    return payload + pixels * pixel_bytes + conversion + input_row_bytes(plan)


def pixels_bytes(pixels: np.ndarray, plan: ImagePlan) -> int:
    """uint8 pixels -> model input: the message and array, a Pillow copy for resizing,
    the row."""
    return (PAYLOAD_COPIES + 1) * pixels.nbytes + input_row_bytes(plan)
