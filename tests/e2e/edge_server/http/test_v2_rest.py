"""KServe V2 REST through stock tritonclient.http and plain requests, against a real
gateway process: health, metadata, infer in JSON and in binary (Triton's binary tensor
data extension), images as BYTES, the repository behind the management token, and the
errors. Every tensor answer is checked against ONNX Runtime run on the same file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from edge_server import __version__
from tests.support.http_gateway import DIGIT_3, MODELS, TOKEN
from tests.support.processes import ServerProcess


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.http_port}", network_timeout=10)


def reference(batch: np.ndarray) -> np.ndarray:
    path = MODELS / "digits" / "1" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, {"input": batch})[0]
    return result


def digits_batch(rows: int = 3) -> np.ndarray:
    return np.random.default_rng(7).random((rows, 1, 28, 28), dtype=np.float32)


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("digits") and client.is_model_ready("digits", "1")
    server = client.get_server_metadata()
    assert server["version"] == __version__
    assert "binary_tensor_data" in server["extensions"]
    metadata = client.get_model_metadata("digits")
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_matches_onnx_runtime(client: triton.InferenceServerClient, binary: bool) -> None:
    batch = digits_batch()
    tensor = triton.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    wanted = triton.InferRequestedOutput("logits", binary_data=binary)
    result = client.infer("digits", [tensor], outputs=[wanted], request_id="r-1")
    np.testing.assert_allclose(result.as_numpy("logits"), reference(batch), rtol=1e-5, atol=1e-6)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "digits",
        "1",
        "r-1",
    )


def test_image_bytes_go_through_the_manifest_preprocessing(
    client: triton.InferenceServerClient,
) -> None:
    images = np.array([DIGIT_3.read_bytes(), DIGIT_3.read_bytes()], dtype=object)
    tensor = triton.InferInput("input", [2], "BYTES")
    tensor.set_data_from_numpy(images, binary_data=True)
    result = client.infer("digits-int8", [tensor])  # no outputs named: all, in binary
    assert list(result.as_numpy("logits").argmax(axis=1)) == [3, 3]


def test_requests_binary_body_by_hand(base: str) -> None:
    """The extension's wire form, built without a client library."""
    batch = digits_batch(1)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 1, 28, 28],
                    "parameters": {"binary_data_size": batch.nbytes},
                }
            ],
            "outputs": [{"name": "logits", "parameters": {"binary_data": True}}],
        }
    ).encode()
    reply = requests.post(
        f"{base}/v2/models/digits/versions/1/infer",
        data=header + batch.astype("<f4").tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    size = int(reply.headers["Inference-Header-Content-Length"])
    answer = json.loads(reply.content[:size])
    (output,) = answer["outputs"]
    assert output["parameters"]["binary_data_size"] == 40
    logits = np.frombuffer(reply.content[size:], "<f4").reshape(output["shape"])
    np.testing.assert_allclose(logits, reference(batch), rtol=1e-5, atol=1e-6)


def _v2_error(reply: requests.Response) -> tuple[int, str, str]:
    body = reply.json()
    return reply.status_code, body["code"], body["error"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid UTF-8 JSON"),
        (b"[]", 400, "JSON object"),
        (
            {"inputs": [{"name": "input", "datatype": "INT32", "shape": [1, 1, 28, 28],
                         "data": [0] * 784}]},
            400,
            "the request sent INT32",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 28, 28],
                         "data": [0.0] * 784}]},
            400,
            "does not fit",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28],
                         "data": [0.0] * 5}]},
            400,
            "needs 784",
        ),
        ({"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1], "data": [1]}]}, 400,
         "not an input"),
        ({"inputs": [{"name": "input", "datatype": "FP99", "shape": [1], "data": [1]}]}, 400,
         "not a V2 datatype"),
    ],
    ids=["bad-json", "not-object", "wrong-datatype", "wrong-shape", "wrong-count",
         "unknown-input", "unknown-datatype"],
)  # fmt: skip
def test_bad_infer_requests(base: str, body: object, status: int, words: str) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = requests.post(f"{base}/v2/models/digits/infer", data=data, timeout=10)
    got_status, code, message = _v2_error(reply)
    assert (got_status, code) == (status, "INVALID_ARGUMENT"), message
    assert words in message


def test_tritonclient_sees_the_errors(client: triton.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("nope")
    assert missing.value.status() == "404"
    assert "model 'nope' is not served here" in missing.value.message()
    tensor = triton.InferInput("input", [1, 1, 28, 28], "INT64")
    tensor.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.int64), binary_data=True)
    with pytest.raises(InferenceServerException) as wrong:
        client.infer("digits", [tensor])
    assert wrong.value.status() == "400" and "INT64" in wrong.value.message()


def test_binary_lengths_that_disagree(base: str) -> None:
    header = b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 28, 28], ' \
        b'"parameters": {"binary_data_size": 3136}}]}'  # fmt: skip
    too_short = requests.post(
        f"{base}/v2/models/digits/infer",
        data=header + b"\0" * 100,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=5,
    )
    assert _v2_error(too_short)[:2] == (400, "INVALID_ARGUMENT")
    assert "goes past" in _v2_error(too_short)[2]
    bad_length = requests.post(
        f"{base}/v2/models/digits/infer",
        data=header,
        headers={"Inference-Header-Content-Length": "99999"},
        timeout=5,
    )
    assert _v2_error(bad_length)[:2] == (400, "INVALID_ARGUMENT")


def test_repository_needs_the_management_token(base: str, server: ServerProcess) -> None:
    index = requests.post(f"{base}/v2/repository/index", json={"ready": True}, timeout=5)
    assert {(e["name"], e["state"]) for e in index.json()} == {
        ("digits", "READY"),
        ("digits-int8", "READY"),
    }
    load = f"{base}/v2/repository/models/digits-int8/load"
    status, code, message = _v2_error(requests.post(load, json={}, timeout=5))
    assert (status, code) == (401, "UNAUTHENTICATED") and "management token" in message
    unload = f"{base}/v2/repository/models/digits-int8/unload"
    status, code, message = _v2_error(requests.post(unload, timeout=5))
    assert (status, code) == (401, "UNAUTHENTICATED") and "Authorization: Bearer" in message
    wrong = {"Authorization": "Bearer not-the-token"}
    assert _v2_error(requests.post(unload, headers=wrong, timeout=5))[:2] == (
        403,
        "PERMISSION_DENIED",
    )
    assert requests.get(f"{base}/v2/models/digits-int8/ready", timeout=5).status_code == 200
    client = triton.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    token = {"Authorization": f"Bearer {TOKEN}"}
    client.unload_model("digits-int8", headers=token)
    assert not client.is_model_ready("digits-int8")
    assert requests.get(f"{base}/v2/models/digits-int8/ready", timeout=5).status_code == 503
    client.load_model("digits-int8", headers=token, config=json.dumps(
        {"version_policy": {"specific": {"versions": [1]}}}
    ))  # fmt: skip
    assert client.is_model_ready("digits-int8", "1")


def test_binary_bytes_element_prefixes(base: str) -> None:
    """BYTES in raw form: each element a 4-byte little-endian length, then the bytes."""
    image = Path(DIGIT_3).read_bytes()
    data = struct.pack("<I", len(image)) + image
    header = json.dumps(
        {"inputs": [{"name": "input", "datatype": "BYTES", "shape": [1],
                     "parameters": {"binary_data_size": len(data)}}]}
    ).encode()  # fmt: skip
    reply = requests.post(
        f"{base}/v2/models/digits/infer",
        data=header + data,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    (output,) = reply.json()["outputs"]  # JSON out: neither the request nor the output asked
    assert int(np.argmax(output["data"])) == 3
