"""Simple prediction over HTTP with curl and requests, against a real gateway process:
the shipped image of a 3 is a 3, through multipart and raw bodies, and every bad input
gets its exact status and JSON error."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import grpc
import pytest
import requests

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from tests.support.http_gateway import DIGIT_3, IMAGES, MAX_MESSAGE_BYTES
from tests.support.metrics_text import total
from tests.support.processes import ServerProcess


def curl(*args: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of one curl call."""
    exe = shutil.which("curl")
    if exe is None:
        pytest.fail("curl is not installed (Debian package curl)")
    done = subprocess.run(
        [exe, "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_multipart_predicts_with_the_default_model(base: str) -> None:
    status, body = curl("-X", "POST", "-F", f"image=@{DIGIT_3}", f"{base}/predict?top_k=3")
    assert status == 200
    assert (body["model_name"], body["model_version"]) == ("digits", "1")
    assert body["class_id"] == 3 and body["label"] == "3"
    assert isinstance(body["class_id"], int)
    assert body["confidence"] > 0.9
    assert [entry["class_id"] for entry in body["top_k"]][:1] == [3]
    assert len(body["top_k"]) == 3
    timings = body["timings"]
    assert timings["total_us"] >= timings["inference_us"] > 0


def test_curl_raw_body_names_model_and_version(base: str) -> None:
    status, body = curl(
        "-X", "POST", "--data-binary", f"@{DIGIT_3}", "-H", "Content-Type: image/png",
        f"{base}/v1/models/digits-int8/versions/1/predict",
    )  # fmt: skip
    assert status == 200
    assert (body["model_name"], body["model_version"], body["class_id"]) == ("digits-int8", "1", 3)


def test_requests_every_shipped_digit(base: str) -> None:
    with requests.Session() as session:
        for image in sorted(IMAGES.glob("digit_*.png")):
            digit = int(image.name.split("_")[1])
            reply = session.post(
                f"{base}/v1/models/digits/predict",
                files={"image": (image.name, image.read_bytes(), "image/png")},
                headers={"X-Request-Id": f"req-{digit}"},
                timeout=10,
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["class_id"] == digit
            assert reply.json()["request_id"] == f"req-{digit}"


def test_http_and_grpc_answer_the_same(base: str, server: ServerProcess) -> None:
    http = requests.post(f"{base}/predict", files={"image": DIGIT_3.read_bytes()}, timeout=10)
    with grpc.insecure_channel(server.target) as channel:
        reply = inference_pb2_grpc.InferenceServiceStub(channel).Predict(
            inference_pb2.PredictRequest(image=DIGIT_3.read_bytes()), timeout=10
        )
    assert http.json()["class_id"] == reply.class_id
    assert http.json()["confidence"] == pytest.approx(reply.confidence)


def test_health_json_names_the_default_model(base: str) -> None:
    reply = requests.get(f"{base}/health", timeout=5)
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "SERVING_STATUS_SERVING"
    assert (body["default_model"], body["default_model_version"]) == ("digits", "1")
    assert {m["name"]: m["state"] for m in body["models"]} == {
        "digits": "MODEL_STATE_READY",
        "digits-int8": "MODEL_STATE_READY",
    }


def _error(reply: requests.Response) -> tuple[int, str, str]:
    error = reply.json()["error"]
    return reply.status_code, error["code"], error["message"]


@pytest.mark.parametrize(
    ("send", "status", "code", "words"),
    [
        (dict(files={"image": b"not an image at all"}), 400, "INVALID_ARGUMENT", "decodable"),
        (dict(files={"photo": DIGIT_3.read_bytes()}), 400, "INVALID_ARGUMENT", "'image' field"),
        (dict(files={"image": b""}), 400, "INVALID_ARGUMENT", "empty"),
        (
            dict(data=b"abc", headers={"Content-Type": "text/plain"}),
            415,
            "INVALID_ARGUMENT",
            "multipart/form-data",
        ),
        (
            dict(data=b"\xff" * (MAX_MESSAGE_BYTES + 1), headers={"Content-Type": "image/png"}),
            413,
            "RESOURCE_EXHAUSTED",
            f"limit of {MAX_MESSAGE_BYTES} bytes",
        ),
    ],
    ids=["bad-image", "missing-field", "empty-image", "unsupported-media-type", "oversized"],
)
def test_bad_prediction_requests(
    base: str, send: dict[str, Any], status: int, code: str, words: str
) -> None:
    reply = requests.post(f"{base}/predict", timeout=10, **send)
    got_status, got_code, message = _error(reply)
    assert (got_status, got_code) == (status, code), message
    assert words in message


def test_unknown_model_wrong_method_and_bad_query(base: str) -> None:
    image = {"image": DIGIT_3.read_bytes()}
    status, code, message = _error(
        requests.post(f"{base}/v1/models/nope/predict", files=image, timeout=5)
    )
    assert (status, code) == (404, "NOT_FOUND") and "digits" in message
    status, code, message = _error(
        requests.post(f"{base}/v1/models/digits/versions/9/predict", files=image, timeout=5)
    )
    assert (status, code) == (404, "NOT_FOUND") and "'9'" in message
    reply = requests.get(f"{base}/predict", timeout=5)
    assert _error(reply)[:2] == (405, "METHOD_NOT_ALLOWED")
    assert reply.headers["Allow"] == "POST"
    status, code, message = _error(
        requests.post(f"{base}/predict?top_k=many", files=image, timeout=5)
    )
    assert (status, code) == (400, "INVALID_ARGUMENT") and "top_k" in message
    status, code, message = _error(
        requests.post(f"{base}/predict?top_k=5000", files=image, timeout=5)
    )
    assert (status, code) == (400, "INVALID_ARGUMENT") and "1000" in message
    status, code, _ = _error(requests.get(f"{base}/no/such/route", timeout=5))
    assert (status, code) == (404, "NOT_FOUND")


def test_http_predictions_are_counted_under_their_own_method(base: str) -> None:
    def count(code: str, model: str = "digits", version: str = "1") -> float:
        text = requests.get(f"{base}/metrics", timeout=5).text
        labels = dict(method="http_predict", model=model, version=version, code=code)
        return total(text, "edge_requests_total", **labels)  # every worker's

    ok, missing = count("OK"), count("NOT_FOUND", "_unknown", "")
    requests.post(f"{base}/predict", files={"image": DIGIT_3.read_bytes()}, timeout=5)
    requests.post(f"{base}/v1/models/x/predict", files={"image": b"x"}, timeout=5)
    assert count("OK") == ok + 1
    assert count("NOT_FOUND", "_unknown", "") == missing + 1
