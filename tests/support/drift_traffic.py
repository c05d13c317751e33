"""Drift test material: the shipped digits model with a recorded reference, and real digit
images as PNG, as drawn (reference traffic) or shifted (inverted, blurred)."""

from __future__ import annotations

import io
import json
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
from PIL import Image, ImageFilter

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from model_tools.evaluate import evaluate_models, record_evaluation
from tests.support.paths import REPO

DIGITS_MODEL = REPO / "examples" / "models" / "digits" / "1"
DIGITS_TEST = REPO / "examples" / "data" / "digits-test.npz"
REFERENCE_ROWS = 180  # the first half of the held-out set; traffic uses the second half

Shift = Callable[[np.ndarray], np.ndarray]


def as_drawn(image: np.ndarray) -> np.ndarray:
    return image


def inverted(image: np.ndarray) -> np.ndarray:
    return np.asarray(255 - image, dtype=np.uint8)


def blurred(image: np.ndarray) -> np.ndarray:
    picture = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=2.5))
    return np.asarray(picture, dtype=np.uint8)


def digits_root(root: Path, name: str = "digits", **extra: object) -> Path:
    """MODEL_ROOT with the shipped digits model whose manifest has a reference recorded by
    ``evaluate --record`` on the first half of the held-out digits (and ``extra`` keys,
    such as a ``feedback`` policy)."""
    version = root / name / "1"
    version.mkdir(parents=True)
    for member in ("model.onnx", "manifest.json"):
        shutil.copyfile(DIGITS_MODEL / member, version / member)
    data = np.load(DIGITS_TEST)
    reference = root.parent / f"{name}-reference.npz"
    np.savez(reference, x=data["x"][:REFERENCE_ROWS], y=data["y"][:REFERENCE_ROWS])
    model = version / "model.onnx"
    manifest = record_evaluation(model, evaluate_models([model], reference, progress=False))
    if extra:
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), **extra}))
    return root


def traffic_pngs(shift: Shift = as_drawn, count: int = 180) -> list[bytes]:
    """``count`` PNGs of held-out digits the reference never saw, shifted by ``shift``."""
    images = np.load(DIGITS_TEST)["x"][REFERENCE_ROWS:]
    pngs = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(shift(images[index % len(images)])).save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    return pngs


def predict_all(target: str, model: str, images: list[bytes]) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for image in images:
            stub.Predict(inference_pb2.PredictRequest(model_name=model, image=image), timeout=10)


def metrics_page(http_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())
