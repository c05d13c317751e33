"""benchmarks/serving_floor.py (the floor cells of `make bench`'s http_face step) as the
benchmark starts it: each protocol's server in its own process on a free port, a real
image model, one real call over the wire answered with the class the pipeline limit's
own recipe and session give in process, and a bad input refused with its status."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from benchmarks.http_face import http_cells
from benchmarks.http_face.cases import Case
from benchmarks.pipeline_limit import Recipe, session
from benchmarks.server_processes import FloorProcess
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from tests.support.model_factory import RGB_PREPROCESSING, pooled_rgb_classifier, write_manifest


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("floor") / "rgb" / "1"
    pooled_rgb_classifier(folder / "model.onnx")
    write_manifest(folder, preprocessing=RGB_PREPROCESSING, labels=["r", "g", "b", "k"])
    return folder


@pytest.fixture(scope="module")
def picture() -> bytes:
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[..., 1] = 220  # a green picture
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def in_process_class(model_dir: Path, picture: bytes) -> int:
    """What the pipeline limit's own work answers for this picture."""
    sess = session(model_dir / "model.onnx", 1)
    tensor = Recipe.for_model(model_dir).preprocess(picture)
    return int(np.argmax(sess.run(None, {sess.get_inputs()[0].name: tensor})[0][0]))


@pytest.mark.parametrize("protocol", ["grpc-aio", "grpc-sync"])
def test_grpc_floor_answers_predict_with_the_limits_class(
    model_dir: Path, picture: bytes, protocol: str
) -> None:
    with FloorProcess(model_dir, protocol) as floor, grpc.insecure_channel(floor.target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        reply = stub.Predict(inference_pb2.PredictRequest(image=picture), timeout=30)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(inference_pb2.PredictRequest(image=b"not a picture"), timeout=30)
    assert floor.proc is not None and floor.proc.returncode == 0  # SIGTERM: a clean stop
    assert reply.model_name == "rgb"
    assert reply.class_id == in_process_class(model_dir, picture)
    assert 0.25 <= reply.confidence <= 1.0  # softmax top of 4 classes
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a picture PIL can decode" in (refused.value.details() or "")


def test_http_floor_answers_a_multipart_upload_with_the_limits_class(
    model_dir: Path, picture: bytes
) -> None:
    case = Case("rgb", "green.png", "image/png", picture)
    with FloorProcess(model_dir, "http") as floor:
        status, body = http_cells.post_once(floor.url, case, timeout=30)
        passes_the_bench_probe = http_cells.answers(floor.url, case)
        raw = urllib.request.Request(
            floor.url, data=picture, headers={"Content-Type": "image/png"}, method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(raw, timeout=30)
    assert floor.proc is not None and floor.proc.returncode == 0
    assert status == 200 and body["class_id"] == in_process_class(model_dir, picture)
    assert 0.25 <= body["confidence"] <= 1.0
    assert passes_the_bench_probe
    assert refused.value.code == 400
    assert "multipart/form-data field 'image'" in json.loads(refused.value.read())["error"]
