"""Turn an ``image=`` argument into the encoded bytes a PredictRequest carries.

Accepted: a path (``str`` or ``os.PathLike``; the file is sent as it is), encoded
``bytes``, a PIL ``Image.Image`` or a ``uint8`` numpy array shaped HxW or HxWxC
(C in 1, 3, 4). Images and arrays are encoded as PNG, so nothing is lost on the way.
Pillow is imported only when an array has to be encoded.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["ImageInput", "encode_image"]

ImageInput: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | Image.Image | npt.NDArray[Any]"
)

# Modes PNG stores as they are; CMYK and YCbCr are converted to RGB first.
_PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
_TO_RGB_MODES = frozenset({"CMYK", "YCbCr"})


def encode_image(image: ImageInput) -> bytes:
    """Encoded image bytes for ``image``; OSError if a file cannot be read.

    Raises TypeError for unsupported argument types and ValueError for arrays or
    images that cannot be encoded losslessly.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if isinstance(image, str | os.PathLike):
        return Path(image).read_bytes()
    if isinstance(image, np.ndarray):
        return _encode_array(image)
    if _is_pil_image(image):
        return _encode_pil(image)
    raise TypeError(
        f"image must be a path, bytes, a PIL image or a uint8 numpy array, "
        f"not {type(image).__name__}"
    )


def _is_pil_image(value: object) -> bool:
    # A PIL image can only exist once PIL.Image is imported; never import it here.
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(value, module.Image)


def _encode_array(array: npt.NDArray[Any]) -> bytes:
    if array.dtype != np.uint8:
        raise ValueError(
            f"image arrays must be uint8 (got {array.dtype}); "
            "send other dtypes with predict_tensor()"
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"image arrays must be HxW or HxWxC with C in 1, 3, 4 (got shape {array.shape})"
        )
    from PIL import Image

    return _encode_pil(Image.fromarray(np.ascontiguousarray(array)))


def _encode_pil(image: Image.Image) -> bytes:
    if image.mode in _TO_RGB_MODES:
        image = image.convert("RGB")
    elif image.mode not in _PNG_MODES:
        raise ValueError(
            f"PIL image mode {image.mode!r} cannot be stored as PNG; convert it "
            "(e.g. image.convert('RGB')) or send a tensor with predict_tensor()"
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
