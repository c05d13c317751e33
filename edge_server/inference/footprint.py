"""How many bytes one call will hold, worked out before anything is decoded.

The memory budget (edge_server/scheduling/admission.py) is charged with this estimate
at admission, on the event loop, so it must cost microseconds whatever the bytes are.
Pillow's ``Image.open`` is not that cheap on hostile input (a PNG's zTXt/iCCP chunks
before the pixels are inflated, a JPEG's APP segments read), so the image size comes
from the fixed header fields of each accepted format instead: PNG IHDR, GIF logical
screen, BMP info header, WebP VP8/VP8L/VP8X, and the JPEG SOF found by walking at most
``MAX_JPEG_SEGMENTS`` segment lengths without reading their data. PNG and JPEG are
walked the way Pillow walks them, up to the image data, since Pillow sizes the image
from the *last* IHDR or SOF before it: a small first header followed by a large one
must not be charged as the small one. Width x height is
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
import re
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.inference.preprocessing import ImagePlan

MAX_JPEG_SEGMENTS = 64  # real files have a handful before SOS; beyond: size unknown
MAX_PNG_CHUNKS = 64  # the same bound for the chunks before IDAT
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_JPEG_SOS = 0xDA
# Markers Pillow reads no length after (JPG, RSTn, SOI, EOI, JPGn); below 0xC0 it stops.
_JPEG_BARE = frozenset({0xC8, *range(0xD0, 0xDA), *range(0xF0, 0xFE)})
_FILL = re.compile(rb"\xff+")
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
    """The last IHDR before IDAT or IEND, chunk lengths skipped without reading data."""
    found: ImageHeader | None = None
    at = 8
    for _ in range(MAX_PNG_CHUNKS):
        if at + 8 > len(data):
            return None
        length, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8]
        if kind in (b"IDAT", b"IEND"):
            return found
        if kind == b"IHDR":
            if length < 13:
                return None  # Pillow refuses it
            width, height, depth, color = struct.unpack(">IIBB", data[at + 8 : at + 18])
            gray_or_palette = color in (0, 3)
            pixel = (2 if depth == 16 else 1) if gray_or_palette else _WIDE
            found = _header(width, height, pixel)
        at += 12 + length  # length, type, data, CRC
    return None


def _jpeg(data: bytes) -> ImageHeader | None:
    """The last SOF before SOS. As in Pillow: bytes other than 0xFF between segments are
    skipped, so are 0xFF fill bytes and an escaped 0xFF00; a segment's length counts at
    least its own two bytes."""
    found: ImageHeader | None = None
    at = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        at = data.find(b"\xff", at)
        fill = _FILL.match(data, at) if at >= 0 else None
        if fill is None or fill.end() + 2 >= len(data):
            return None
        at = fill.end()
        marker = data[at]
        if marker == 0x00 or marker in _JPEG_BARE:
            at += 1
            continue
        if marker < 0xC0:
            return None  # Pillow: "no marker found"
        if marker == _JPEG_SOS:
            return found
        length = int.from_bytes(data[at + 1 : at + 3], "big")
        if marker in _JPEG_SOF:
            height, width, components = struct.unpack(">HHB", data[at + 4 : at + 9])
            found = _header(width, height, 1 if components == 1 else _WIDE, jpeg=True)
        at += 1 + max(2, length)
    return None


def _bmp(data: bytes) -> ImageHeader | None:
    """The info header as Pillow reads it (OS/2 1.x: 16-bit sides;
    later headers: 32-bit, a height whose top byte is 0xFF meaning top-down)."""
    size = int.from_bytes(data[14:18], "little")
    if size == 12:
        width, height, _, bits = struct.unpack("<HHHH", data[18:26])
    elif size in (40, 52, 56, 64, 108, 124):
        width, height, _, bits = struct.unpack("<IIHH", data[18:30])
        if data[25] == 0xFF:
            height = 2**32 - height
    else:
        return None
    return _header(width, height, 1 if bits <= 8 else _WIDE)


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
            return _bmp(data)
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
        # libjpeg rounds a scaled side up
        pixels = min(max_pixels, -(-width // scale) * -(-height // scale))
    converted = 1 if plan.color_mode == "L" else _WIDE
    conversion = pixels * converted if converted != pixel_bytes else 0
    payload = PAYLOAD_COPIES * len(data)
    return payload + pixels * pixel_bytes + conversion + input_row_bytes(plan)


def pixels_bytes(pixels: np.ndarray, plan: ImagePlan) -> int:
    """uint8 pixels -> model input: the message and array, a Pillow copy for resizing,
    the row."""
    return (PAYLOAD_COPIES + 1) * pixels.nbytes + input_row_bytes(plan)
