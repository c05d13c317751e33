"""Encoded image bytes -> the model's input tensor, following the manifest.

Runs in the preprocess thread pool (Pillow releases the GIL while decoding and
resizing, NumPy while normalizing). Work is float32 end to end: no float64, and the
uint8 -> float32 normalization writes the model's layout straight into the batch row
(per-channel multiply from the strided HWC pixels, then an in-place add), so there is no
float intermediate and no separate transpose copy.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from edge_contracts.manifest import Preprocessing
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import InvalidInput, ManifestError

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "GIF", "MPO"})
# Formats decoded by libjpeg, which can scale by 1/2, 1/4 or 1/8 in the DCT (draft mode).
# MPO is a JPEG with extra frames (phone cameras); its first frame is a plain JPEG.
DRAFT_FORMATS = frozenset({"JPEG", "MPO"})


@dataclass(frozen=True)
class ImagePlan:
    """Everything needed to turn one image into one batch row, resolved at load time."""

    height: int
    width: int
    color_mode: str
    layout: str
    resample: Image.Resampling
    dtype: np.dtype[np.generic]
    multiplier: np.ndarray  # scale / std, per channel (float32)
    offset: np.ndarray  # -mean / std, per channel (float32)
    normalize: bool
    # multiplier and offset shaped to broadcast over one batch row in the model's layout
    row_multiplier: np.ndarray = field(init=False, repr=False, compare=False)
    row_offset: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        shape = (-1, 1, 1) if self.layout == "NCHW" else (-1,)
        object.__setattr__(self, "row_multiplier", self.multiplier.reshape(shape))
        object.__setattr__(self, "row_offset", self.offset.reshape(shape))


def _spatial_dims(spec: TensorSpec, layout: str) -> tuple[int, int, int]:
    if len(spec.shape) != 4:
        raise ManifestError(
            f"input {spec.describe()} is not a 4-D image tensor; image preprocessing "
            "needs [N, C, H, W] or [N, H, W, C]"
        )
    if layout == "NCHW":
        _, c, h, w = spec.shape
    else:
        _, h, w, c = spec.shape
    return c, h, w


def plan_image_input(pre: Preprocessing, spec: TensorSpec) -> ImagePlan:
    """Resolve the manifest against the ONNX input; ManifestError when they disagree."""
    channels, height, width = _spatial_dims(spec, pre.layout)
    if channels not in (-1, pre.channels):
        raise ManifestError(
            f"color_mode {pre.color_mode} gives {pre.channels} channel(s) but input "
            f"{spec.describe()} has {channels} ({pre.layout})"
        )
    if height == -1 or width == -1:
        if pre.input_size is None:
            raise ManifestError(
                f"input {spec.describe()} has dynamic height/width: the manifest must give "
                "preprocessing.input_size"
            )
        height, width = pre.input_size
    elif pre.input_size is not None and pre.input_size != (height, width):
        raise ManifestError(
            f"preprocessing.input_size {list(pre.input_size)} disagrees with the ONNX input "
            f"{spec.describe()}"
        )
    dtype = np.dtype(spec.dtype if spec.dtype in ("float32", "float16", "uint8") else "float32")
    normalize = dtype.kind == "f"
    std = np.asarray(pre.std, dtype=np.float32)
    mean = np.asarray(pre.mean, dtype=np.float32)
    return ImagePlan(
        height=height,
        width=width,
        color_mode=pre.color_mode,
        layout=pre.layout,
        resample=Image.Resampling[pre.resize_filter.upper()],
        dtype=dtype,
        multiplier=(np.float32(pre.scale) / std).astype(np.float32),
        offset=(-mean / std).astype(np.float32),
        normalize=normalize,
    )


def decode_image(
    data: bytes, max_pixels: int, draft: tuple[str, tuple[int, int]] | None = None
) -> Image.Image:
    """Decode JPEG/PNG/BMP/WebP/GIF (first frame) with a decompression-bomb guard."""
    if not data:
        raise InvalidInput("image is empty: send the encoded file's bytes", field="image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in ALLOWED_FORMATS:
                raise InvalidInput(
                    f"image format {image.format} is not accepted; use JPEG, PNG, BMP, WebP or GIF",
                    field="image",
                )
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidInput(
                    f"image is {width}x{height} = {width * height} pixels, over the gateway's "
                    f"limit of {max_pixels}; downscale it before sending",
                    field="image",
                )
            if draft is not None and image.format in DRAFT_FORMATS:
                # DCT-domain downscaling: decode at 1/2, 1/4 or 1/8 size when the source
                # is much larger than the model input; far cheaper than a full decode.
                image.draft(*draft)
            image.seek(0)
            image.load()
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInput(
            f"image rejected as a decompression bomb: {exc}", field="image"
        ) from None
    except UnidentifiedImageError:
        raise InvalidInput(
            "image bytes are not a decodable JPEG, PNG, BMP, WebP or GIF file", field="image"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput(f"image is corrupt or truncated: {exc}", field="image") from None
    return image


def image_to_tensor(image: Image.Image, plan: ImagePlan) -> np.ndarray:
    """Convert, resize and normalize one decoded image into a [1, ...] batch."""
    if image.mode != plan.color_mode:
        image = image.convert(plan.color_mode)
    if image.size != (plan.width, plan.height):
        image = image.resize((plan.width, plan.height), plan.resample)
    return _batch_row(np.asarray(image, dtype=np.uint8), plan)


def _batch_row(pixels: np.ndarray, plan: ImagePlan) -> np.ndarray:
    """uint8 [H, W] or [H, W, C] pixels at the model's size -> a new [1, ...] batch.

    The same float32 operations in the same order as ``x = float32(p); x *= m; x += o``
    (so bit-identical to it), but the multiply reads the pixels through a transposed
    view and writes the preallocated output, and the add runs in place: two passes, no
    float temporaries, no transpose copy. Never returns a view of ``pixels``.
    """
    if pixels.ndim == 2:
        source = pixels[np.newaxis] if plan.layout == "NCHW" else pixels[:, :, np.newaxis]
    else:
        source = pixels.transpose(2, 0, 1) if plan.layout == "NCHW" else pixels
    batch = np.empty((1, *source.shape), dtype=plan.dtype)
    row = batch[0]
    if not plan.normalize:
        np.copyto(row, source)
        return batch
    scaled = row if plan.dtype == np.float32 else np.empty(source.shape, dtype=np.float32)
    np.multiply(source, plan.row_multiplier, out=scaled)
    np.add(scaled, plan.row_offset, out=row, casting="same_kind")  # float16: one rounding
    return batch


def preprocess_image(data: bytes, plan: ImagePlan, max_pixels: int) -> np.ndarray:
    """Bytes -> [1, ...] tensor; raises InvalidInput for anything undecodable."""
    # Draft only to twice the target size so the final resize still filters properly:
    # libjpeg decodes at the largest 1/2, 1/4 or 1/8 scale that keeps both sides at least
    # twice the model's, i.e. whenever the JPEG is at least 4x the input in each side.
    draft = (plan.color_mode, (plan.width * 2, plan.height * 2))
    return image_to_tensor(decode_image(data, max_pixels, draft), plan)


def pixels_to_tensor(pixels: np.ndarray, plan: ImagePlan) -> np.ndarray:
    """Raw uint8 pixels (HxW, HxWxC or 1xHxWxC, C = 1, 3 or 4) -> [1, ...] model input.

    For apps that already hold decoded frames: no encode on their side, no decode here.
    Pixels already in the model's color mode and size skip Pillow entirely.
    """
    array = pixels[0] if pixels.ndim == 4 and pixels.shape[0] == 1 else pixels
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidInput(
            f"uint8 pixel tensor has shape {list(pixels.shape)}; send [H, W], [H, W, C] or "
            "[1, H, W, C] with C = 1, 3 or 4",
            field="tensor.shape",
        )
    height, width = array.shape[:2]
    if height == 0 or width == 0:
        raise InvalidInput("uint8 pixel tensor is empty", field="tensor.shape")
    mode = "L" if array.ndim == 2 else ("RGB" if array.shape[2] == 3 else "RGBA")
    if mode == "RGBA" and plan.color_mode == "RGB":
        array, mode = array[:, :, :3], "RGB"  # what Pillow's RGBA -> RGB convert does
    if mode == plan.color_mode and (width, height) == (plan.width, plan.height):
        return _batch_row(array, plan)
    return image_to_tensor(Image.fromarray(np.ascontiguousarray(array), mode), plan)
