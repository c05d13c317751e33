"""The two kinds of model the issue names, each with the picture a client sends.

- ``digits``: the small digits CNN (the shipped demo model) and a 32x32 PNG of a
  shipped digit: a model so small that the serving stack is the whole cost;
- ``mobilenet-int8``: MobileNetV2 static INT8 and a 512x512 JPEG photo (scikit-image's
  astronaut at quality 90, about 68 KB): decode + resize + ``session.run`` bound.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from benchmarks import models
from benchmarks.payloads import PREDICT, Payload
from edge_contracts.proto.edge.v1 import inference_pb2

CLIENTS = 32


@dataclass(frozen=True)
class Case:
    model: str
    filename: str
    content_type: str
    picture: bytes

    def payload(self) -> Payload:
        """The same picture as a gRPC Predict request (h2load's frame)."""
        request = inference_pb2.PredictRequest(model_name=self.model, image=self.picture)
        return Payload(self.model, "image", PREDICT, request.SerializeToString())

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        path.write_bytes(self.picture)
        return path


def _encoded(pixels: object, kind: str, **options: object) -> bytes:
    from PIL import Image

    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)  # type: ignore[arg-type]
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def digits_case() -> Case:
    from PIL import Image

    shipped = sorted((models.REPO / "examples" / "images").glob("digit_*.png"))[0]
    small = Image.open(shipped).convert("L").resize((32, 32), Image.Resampling.BILINEAR)
    return Case("digits", "digit-32.png", "image/png", _encoded(small, "PNG"))


def mobilenet_case() -> Case:
    photo = models.photo("astronaut")  # 512x512 RGB
    assert photo.shape[:2] == (512, 512), photo.shape
    jpeg = _encoded(photo, "JPEG", quality=90)
    return Case("mobilenet-int8", "astronaut-512.jpg", "image/jpeg", jpeg)


def cases() -> dict[str, Case]:
    return {case.model: case for case in (digits_case(), mobilenet_case())}
