"""footprint: image sizes read from header fields, checked against what Pillow itself
reports for real files it wrote; unreadable, truncated, corrupt and hostile bytes are
charged the largest image allowed and never raise."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from edge_contracts.manifest import parse_preprocessing
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.inference.footprint import (
    MAX_JPEG_SEGMENTS,
    MAX_PNG_CHUNKS,
    PAYLOAD_COPIES,
    image_bytes,
    input_row_bytes,
    output_bytes,
    pixels_bytes,
    read_header,
)
from edge_server.inference.preprocessing import ImagePlan, decode_image, plan_image_input
from tests.support.fuzzing import mutated_bytes

MAX_PIXELS = 16_000_000
# Bytes a pixel of each Pillow mode takes once decoded (the footprint module's table).
MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "LA": 4, "PA": 4}


def plan_for(color_mode: str, height: int = 32, width: int = 40) -> ImagePlan:
    channels = 3 if color_mode == "RGB" else 1
    pre = parse_preprocessing(
        {
            "color_mode": color_mode,
            "layout": "NCHW",
            "mean": [0.5] * channels,
            "std": [0.5] * channels,
        }
    )
    spec = TensorSpec(name="input", dtype="float32", shape=(-1, channels, height, width))
    return plan_image_input(pre, spec)


RGB_PLAN = plan_for("RGB")


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def solid(mode: str, size: tuple[int, int]) -> Image.Image:
    return Image.new("RGBA", size, (200, 30, 90, 128)).convert(mode)


def noisy(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


def maximum(data: bytes, plan: ImagePlan = RGB_PLAN) -> int:
    """The charge of an image whose size is unknown: the largest allowed, 4 bytes a pixel."""
    conversion = MAX_PIXELS if plan.color_mode == "L" else 0
    return PAYLOAD_COPIES * len(data) + MAX_PIXELS * 4 + conversion + input_row_bytes(plan)


def big_icc() -> bytes:
    """A 200 kB ICC profile: more than three JPEG APP2 segments."""
    return bytes(np.random.default_rng(7).integers(0, 256, 200_000, dtype=np.uint8))


def exif() -> bytes:
    info = Image.Exif()
    info[0x010F] = "edge camera"  # Make
    info[0x0110] = "unit test"  # Model
    return info.tobytes()


SAMPLES: dict[str, bytes] = {
    **{
        f"png-{mode}-{w}x{h}": encode(noisy(mode, (w, h)), "PNG")
        for mode in ("RGB", "L", "RGBA", "P", "LA", "1")
        for (w, h) in ((1, 1), (3, 5), (61, 17))
    },
    "png-I;16-9x4": encode(Image.fromarray(np.arange(36, dtype=np.uint16).reshape(4, 9)), "PNG"),
    "png-RGB-4000x3000": encode(solid("RGB", (4000, 3000)), "PNG"),
    "png-interlaced": encode(noisy("RGB", (33, 21)), "PNG", interlace=1),
    "apng": encode(
        noisy("RGB", (24, 18)), "PNG", save_all=True, append_images=[noisy("RGB", (24, 18), 1)]
    ),
    **{
        f"jpeg-{mode}-{w}x{h}": encode(noisy(mode, (w, h)), "JPEG")
        for mode in ("RGB", "L", "CMYK")
        for (w, h) in ((1, 1), (3, 5), (61, 17))
    },
    "jpeg-RGB-4000x3000": encode(solid("RGB", (4000, 3000)), "JPEG", quality=20),
    "jpeg-progressive": encode(noisy("RGB", (45, 31)), "JPEG", progressive=True),
    "jpeg-exif-icc": encode(noisy("RGB", (37, 29)), "JPEG", exif=exif(), icc_profile=big_icc()),
    "jpeg-restart-markers": encode(noisy("RGB", (64, 48)), "JPEG", restart_marker_blocks=1),
    "mpo": encode(
        noisy("RGB", (30, 20)), "MPO", save_all=True, append_images=[noisy("RGB", (30, 20), 1)]
    ),
    **{
        f"gif-{mode}-{w}x{h}": encode(noisy(mode, (w, h)), "GIF")
        for mode in ("P", "L", "RGB")
        for (w, h) in ((1, 1), (3, 5), (61, 17))
    },
    "gif-animated": encode(
        noisy("P", (20, 10)), "GIF", save_all=True, append_images=[noisy("P", (20, 10), 1)]
    ),
    **{
        f"bmp-{mode}-{w}x{h}": encode(noisy(mode, (w, h)), "BMP")
        for mode in ("RGB", "L", "RGBA", "P", "1")
        for (w, h) in ((1, 1), (3, 5), (61, 17))
    },
    **{
        f"webp-{kind}-{w}x{h}": encode(noisy(mode, (w, h)), "WEBP", **options)
        for kind, mode, options in (
            ("lossy", "RGB", {"quality": 60}),
            ("lossless", "RGB", {"lossless": True}),
            ("alpha", "RGBA", {"quality": 60}),
            ("lossless-alpha", "RGBA", {"lossless": True}),
        )
        for (w, h) in ((1, 1), (3, 5), (61, 17))
    },
    "webp-animated": encode(
        noisy("RGB", (26, 14)),
        "WEBP",
        save_all=True,
        append_images=[noisy("RGB", (26, 14), 1)],
        duration=50,
    ),
    "webp-icc": encode(noisy("RGB", (19, 11)), "WEBP", icc_profile=big_icc()[:2000]),
    "webp-RGB-4000x3000": encode(solid("RGB", (4000, 3000)), "WEBP", quality=10, method=0),
}


def pillow(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_header_gives_the_size_pillow_reads(name: str) -> None:
    data = SAMPLES[name]
    header = read_header(data)
    image = pillow(data)
    assert header is not None
    assert (header.width, header.height) == image.size
    assert header.jpeg == (image.format in ("JPEG", "MPO"))
    image.load()  # the mode the first frame decodes to: at least as many bytes charged
    assert header.pixel_bytes >= MODE_BYTES.get(image.mode, 4)


@pytest.mark.parametrize(
    ("name", "pixel_bytes"),
    [
        ("png-L-3x5", 1),
        ("png-P-3x5", 1),
        ("png-I;16-9x4", 2),
        ("png-RGB-3x5", 4),
        ("jpeg-L-3x5", 1),
        ("jpeg-RGB-3x5", 4),
        ("bmp-P-3x5", 1),
        ("bmp-RGB-3x5", 4),
    ],
)
def test_one_byte_modes_are_not_charged_as_four(name: str, pixel_bytes: int) -> None:
    header = read_header(SAMPLES[name])
    assert header is not None and header.pixel_bytes == pixel_bytes


@pytest.mark.parametrize("name", ["png-L-61x17", "png-RGBA-61x17", "bmp-P-61x17"])
@pytest.mark.parametrize("color_mode", ["RGB", "L"])
def test_the_charge_is_payload_twice_image_conversion_and_input_row(
    name: str, color_mode: str
) -> None:
    data = SAMPLES[name]
    plan = plan_for(color_mode)
    header = read_header(data)
    assert header is not None
    pixels = 61 * 17
    converted = 1 if color_mode == "L" else 4
    conversion = 0 if converted == header.pixel_bytes else pixels * converted
    expected = 2 * len(data) + pixels * header.pixel_bytes + conversion + input_row_bytes(plan)
    assert image_bytes(data, plan, MAX_PIXELS) == expected
    assert input_row_bytes(plan) == 32 * 40 * (1 if color_mode == "L" else 3) * 4


def jpeg_of(size: tuple[int, int]) -> bytes:
    return encode(solid("RGB", size), "JPEG", quality=20)


@pytest.mark.parametrize("size", [(4000, 3000), (4001, 3003), (321, 257), (159, 130), (100, 90)])
def test_a_large_jpeg_is_charged_at_the_scale_it_is_decoded_at(size: tuple[int, int]) -> None:
    data = jpeg_of(size)
    decoded = decode_image(data, MAX_PIXELS, ("RGB", (RGB_PLAN.width * 2, RGB_PLAN.height * 2)))
    pixels = decoded.size[0] * decoded.size[1]
    assert image_bytes(data, RGB_PLAN, MAX_PIXELS) == (
        2 * len(data) + pixels * 4 + input_row_bytes(RGB_PLAN)
    )


def test_the_pixels_are_capped_by_the_limit() -> None:
    data = SAMPLES["png-RGB-4000x3000"]
    assert image_bytes(data, RGB_PLAN, 1_000_000) == (
        2 * len(data) + 1_000_000 * 4 + input_row_bytes(RGB_PLAN)
    )


def test_the_charge_grows_with_the_pixels() -> None:
    sizes = [(1, 1), (2, 1), (3, 5), (8, 8), (40, 30), (200, 150), (1000, 700), (4000, 3000)]
    for fmt in ("PNG", "GIF", "WEBP", "JPEG", "BMP"):
        images = [encode(solid("RGB", size), fmt) for size in sizes[:-1]]
        beyond_payload = [image_bytes(d, RGB_PLAN, MAX_PIXELS) - 2 * len(d) for d in images]
        assert beyond_payload == sorted(beyond_payload), fmt
        assert len(set(beyond_payload)) == len(beyond_payload), fmt


CORRUPT = {
    "empty": b"",
    "png-signature-only": b"\x89PNG\r\n\x1a\n",
    "png-ihdr-cut": SAMPLES["png-RGB-61x17"][:20],
    "png-no-idat": SAMPLES["png-RGB-61x17"][:33],
    "png-short-ihdr": b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 4) + b"IHDR\0\0\0\x10" + b"\0" * 4,
    "jpeg-soi-only": b"\xff\xd8",
    "jpeg-sof-no-sos": SAMPLES["jpeg-RGB-61x17"][:400],
    "jpeg-junk-marker": b"\xff\xd8\xff\x10\x00\x08" + b"\0" * 20,
    "jpeg-all-fill": b"\xff\xd8" + b"\xff" * 100_000,
    "gif-cut": b"GIF89a\x10",
    "bmp-unknown-header": b"BM" + b"\0" * 12 + struct.pack("<I", 99) + b"\0" * 40,
    "webp-unknown-chunk": b"RIFF\0\0\0\0WEBPALPH" + b"\0" * 40,
    "webp-cut": SAMPLES["webp-lossy-61x17"][:24],
    "tiff": encode(solid("RGB", (8, 8)), "TIFF"),
    "random": bytes(np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8)),
}


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_unreadable_headers_are_charged_the_largest_image(name: str) -> None:
    data = CORRUPT[name]
    assert read_header(data) is None
    assert image_bytes(data, RGB_PLAN, MAX_PIXELS) == maximum(data)
    assert image_bytes(data, plan_for("L"), MAX_PIXELS) == maximum(data, plan_for("L"))


@pytest.mark.parametrize("name", ["png-RGB-61x17", "jpeg-exif-icc", "jpeg-progressive"])
def test_png_and_jpeg_cut_before_their_image_data_are_charged_the_largest_image(
    name: str,
) -> None:
    data = SAMPLES[name]
    start = data.index(b"IDAT") - 4 if name.startswith("png") else data.index(b"\xff\xda")
    cuts = {*range(0, start, max(1, start // 400)), *range(max(0, start - 40), start)}
    for cut in sorted(cuts):
        assert image_bytes(data[:cut], RGB_PLAN, MAX_PIXELS) == maximum(data[:cut]), cut


@pytest.mark.parametrize("name", ["gif-P-61x17", "bmp-RGB-61x17", "webp-lossy-61x17", "apng"])
def test_any_other_cut_is_charged_the_largest_image_or_the_full_size(name: str) -> None:
    data = SAMPLES[name]
    full = read_header(data)
    for cut in range(min(len(data), 200)):
        assert read_header(data[:cut]) in (None, full), cut


def jpeg_segments(data: bytes) -> list[bytes]:
    """Pillow's JPEG split at its markers (no fill bytes in what Pillow writes), up to SOS."""
    segments, at = [], 2
    while data[at + 1] != 0xDA:
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        segments.append(data[at : at + 2 + length])
        at += 2 + length
    return segments


def app_segment(payload: bytes, marker: int = 0xE5) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", 2 + len(payload)) + payload


def test_the_jpeg_walk_stops_after_its_segment_bound() -> None:
    data = SAMPLES["jpeg-RGB-61x17"]
    ahead = len(jpeg_segments(data)) + 1  # SOS is the last marker looked at
    fits = data[:2] + app_segment(b"x") * (MAX_JPEG_SEGMENTS - ahead) + data[2:]
    assert pillow(fits).size == (61, 17)
    header = read_header(fits)
    assert header is not None and (header.width, header.height) == (61, 17)
    hostile = data[:2] + app_segment(b"x") * (MAX_JPEG_SEGMENTS - ahead + 1) + data[2:]
    assert pillow(hostile).size == (61, 17)  # valid, but too many segments to walk
    assert read_header(hostile) is None
    assert image_bytes(hostile, RGB_PLAN, MAX_PIXELS) == maximum(hostile)


def fake_sof(width: int, height: int) -> bytes:
    return (
        b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x01\x22\x00" * 3
    )


def test_jpeg_segment_data_is_skipped_by_its_length_not_read() -> None:
    data = SAMPLES["jpeg-RGB-61x17"]
    # A 60 kB comment whose bytes look like a 1x1 SOF: a walk that read the data would
    # stop there; skipping by the length finds the real one.
    comment = app_segment((fake_sof(1, 1) + b"\0" * 100) * 500, marker=0xFE)
    hostile = data[:2] + comment + data[2:]
    header = read_header(hostile)
    assert pillow(hostile).size == (61, 17)
    assert header is not None and (header.width, header.height) == (61, 17)


def test_the_last_jpeg_sof_counts_as_in_pillow() -> None:
    data = SAMPLES["jpeg-RGB-61x17"]
    sos = data.index(b"\xff\xda")
    small_first = data[:2] + fake_sof(1, 1) + data[2:]
    big_last = data[:sos] + fake_sof(3000, 2000) + data[sos:]
    for hostile, size in ((small_first, (61, 17)), (big_last, (3000, 2000))):
        header = read_header(hostile)
        assert pillow(hostile).size == size
        assert header is not None and (header.width, header.height) == size


def test_jpeg_junk_between_segments_is_skipped_as_in_pillow() -> None:
    data = SAMPLES["jpeg-RGB-61x17"]
    at = 2 + len(jpeg_segments(data)[0])
    # Bytes other than 0xFF between segments, shaped like a 1x1 SOF without its 0xFF:
    # Pillow skips them, so must the walk. Then fill bytes and an escaped 0xFF00.
    hostile = data[:at] + fake_sof(1, 1)[1:] + b"\xff\x00\xff\xff\xff" + data[at:]
    header = read_header(hostile)
    assert pillow(hostile).size == (61, 17)
    assert header is not None and (header.width, header.height) == (61, 17)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def ihdr(width: int, height: int) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def test_a_huge_png_chunk_before_ihdr_is_skipped_by_its_length() -> None:
    data = SAMPLES["png-RGB-61x17"]
    # 4 MB of zTXt whose data holds a 1x1 IHDR: skipped by length, never inflated.
    text = png_chunk(b"zTXt", b"k\0\0" + (ihdr(1, 1) * 1000).ljust(4_000_000, b"\0"))
    hostile = data[:8] + text + data[8:]
    header = read_header(hostile)
    assert header is not None and (header.width, header.height) == (61, 17)
    beyond = data[:8] + struct.pack(">I", 2**31) + b"zTXt" + data[8:]  # past the end
    assert read_header(beyond) is None


def test_the_png_walk_stops_after_its_chunk_bound() -> None:
    data = SAMPLES["png-RGB-61x17"]
    idat = data.index(b"IDAT") - 4
    ahead = len(_png_chunks(data[8:idat]))  # IHDR and what Pillow wrote before IDAT
    note = png_chunk(b"tEXt", b"k\0v")
    fits = data[:idat] + note * (MAX_PNG_CHUNKS - ahead - 1) + data[idat:]
    assert pillow(fits).size == (61, 17)
    header = read_header(fits)
    assert header is not None and (header.width, header.height) == (61, 17)
    hostile = data[:idat] + note * (MAX_PNG_CHUNKS - ahead) + data[idat:]
    assert pillow(hostile).size == (61, 17)
    assert image_bytes(hostile, RGB_PLAN, MAX_PIXELS) == maximum(hostile)


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        chunks.append(data[at : at + 12 + length])
        at += 12 + length
    return chunks


def test_the_last_png_ihdr_counts_as_in_pillow() -> None:
    data = SAMPLES["png-RGB-61x17"]
    hostile = data[:33] + ihdr(3000, 2000) + data[33:]
    header = read_header(hostile)
    assert pillow(hostile).size == (3000, 2000)
    assert header is not None and (header.width, header.height) == (3000, 2000)


def bmp_core(width: int, height: int) -> bytes:
    """An OS/2 1.x bitmap (12-byte info header, 16-bit sides), 24 bits a pixel."""
    row = (width * 3 + 3) // 4 * 4
    pixels = b"\x10\x20\x30" * width
    body = struct.pack("<IHHHH", 12, width, height, 1, 24) + (pixels.ljust(row, b"\0")) * height
    return b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, 26) + body


@pytest.mark.parametrize(("width", "height"), [(1, 1), (3, 5), (300, 2)])
def test_os2_bitmaps_are_read_with_16_bit_sides(width: int, height: int) -> None:
    data = bmp_core(width, height)
    header = read_header(data)
    assert pillow(data).size == (width, height)
    assert header is not None and (header.width, header.height) == (width, height)


def test_top_down_bitmaps_are_charged_their_real_height() -> None:
    data = bytearray(SAMPLES["bmp-RGB-61x17"])
    data[22:26] = struct.pack("<i", -17)
    header = read_header(bytes(data))
    assert pillow(bytes(data)).size == (61, 17)
    assert header is not None and (header.width, header.height) == (61, 17)


def test_tensor_inputs_are_charged_by_their_bytes() -> None:
    pixels = np.zeros((1, 32, 40, 3), dtype=np.uint8)
    assert pixels_bytes(pixels, RGB_PLAN) == 3 * pixels.nbytes + input_row_bytes(RGB_PLAN)
    outputs = [
        TensorSpec(name="logits", dtype="float32", shape=(-1, 10)),
        TensorSpec(name="ids", dtype="int64", shape=(-1, 3, -1)),
        TensorSpec(name="labels", dtype="object", shape=(-1,)),
    ]
    assert output_bytes(outputs, 1) == 10 * 4 + 3 * 8 + 8
    assert output_bytes(outputs, 16) == 16 * 10 * 4 + 16 * 3 * 8 + 16 * 8


def check_never_raises_and_is_safe(data: bytes) -> None:
    charge = image_bytes(data, RGB_PLAN, MAX_PIXELS)
    header = read_header(data)
    assert charge >= len(data)
    if header is None:
        assert charge == maximum(data)
        return
    try:
        size = pillow(data).size
    except Exception:  # whatever Pillow refuses, the decoder refuses
        return
    # What Pillow would allocate is never more than what was charged.
    assert size[0] * size[1] <= header.width * header.height


@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    check_never_raises_and_is_safe(data)


@given(
    st.binary(max_size=256),
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBPVP8 "]),
)
def test_random_bytes_after_a_signature_never_raise(data: bytes, signature: bytes) -> None:
    check_never_raises_and_is_safe(signature + data)


MUTATED = ["png-RGB-61x17", "jpeg-exif-icc", "gif-P-61x17", "bmp-RGB-61x17", "webp-lossy-61x17"]
MUTATED += ["webp-lossless-61x17", "webp-animated", "jpeg-progressive"]


@given(st.sampled_from(MUTATED).flatmap(lambda name: mutated_bytes(SAMPLES[name][:4096])))
def test_mutated_images_never_raise_and_never_undercharge(data: bytes) -> None:
    check_never_raises_and_is_safe(data)
