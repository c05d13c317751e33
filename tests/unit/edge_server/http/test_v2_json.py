"""edge_server/http/v2_json.py: V2 REST bodies, in JSON and with binary tensor data."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from edge_server.errors import InvalidInput
from edge_server.http.v2_json import decode_infer, encode_infer, split_body
from edge_server.inference.predictor import StageTimings
from edge_server.v2.raw_tensors import encode_raw
from edge_server.v2.tensor_inference import NamedTensor, TensorResult


def infer(header: dict[str, Any], binary: bytes = b"") -> Any:
    return decode_infer(header, binary, "m", "")


def tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def test_nested_and_flat_json_data_decode_alike() -> None:
    nested, _ = infer({"inputs": [tensor("x", "INT16", [2, 2], [[1, 2], [3, -4]])]})
    flat, _ = infer({"inputs": [tensor("x", "INT16", [2, 2], [1, 2, 3, -4])]})
    for request in (nested, flat):
        (x,) = request.inputs
        assert x.array.dtype == np.int16
        np.testing.assert_array_equal(x.array, [[1, 2], [3, -4]])


@pytest.mark.parametrize(
    ("datatype", "data", "words"),
    [
        ("UINT8", [256], "does not fit"),
        ("INT64", [2**70], "does not fit"),
        ("BOOL", [1], "true or false"),
        ("INT32", [1.5], "integers"),
        ("FP32", ["1"], "numbers"),
        ("FP32", [True], "numbers"),
        ("BYTES", [1], "strings"),
        ("BF16", [1.0], "BF16"),
    ],
)
def test_json_values_that_do_not_fit(datatype: str, data: list[Any], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        infer({"inputs": [tensor("x", datatype, [1], data)]})


def test_binary_inputs_are_cut_in_order_and_must_add_up() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    texts = np.array([b"hi", b""], dtype=object)
    binary = encode_raw(a) + encode_raw(texts)
    header = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 3],
             "parameters": {"binary_data_size": a.nbytes}},
            tensor("b", "BOOL", [1], [True]),
            {"name": "c", "datatype": "BYTES", "shape": [2],
             "parameters": {"binary_data_size": len(binary) - a.nbytes}},
        ],
        "parameters": {"binary_data_output": True, "timeout": 5_000_000},
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}, {"name": "z"}],
    }  # fmt: skip
    request, wants = infer(header, binary)
    np.testing.assert_array_equal(request.inputs[0].array, a)
    assert request.inputs[1].array.tolist() == [True]
    assert request.inputs[2].array.tolist() == [b"hi", b""]
    assert request.output_names == ("y", "z")
    assert wants == {"": True, "y": False, "z": True}
    assert request.deadline is not None
    with pytest.raises(InvalidInput, match="left over"):
        infer(header, binary + b"\0")


def test_split_body_checks_the_header_length() -> None:
    body = b'{"inputs": []}' + b"\x01\x02"
    assert split_body(body, "14") == ({"inputs": []}, b"\x01\x02")
    for bad in ("-1", "99", "x"):
        with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
            split_body(body, bad)
    with pytest.raises(InvalidInput, match="JSON"):
        split_body(b"{", None)


def test_answer_in_json_and_in_binary() -> None:
    logits = np.array([[0.5, -1.0]], dtype=np.float32)
    labels = np.array([b"cat"], dtype=object)
    result = TensorResult(
        "m", "2", (NamedTensor("logits", logits), NamedTensor("labels", labels)),
        StageTimings(0, 0, 0, 0, 0),
    )  # fmt: skip
    text, length = encode_infer(result, "id-1", {"": False})
    assert length is None
    answer = json.loads(text)
    assert answer["id"] == "id-1" and answer["model_version"] == "2"
    assert answer["outputs"][0] == {
        "name": "logits", "datatype": "FP32", "shape": [1, 2], "data": [0.5, -1.0]
    }  # fmt: skip
    assert answer["outputs"][1]["data"] == ["cat"]
    body, length = encode_infer(result, "", {"": False, "logits": True})
    assert length is not None
    header = json.loads(body[:length])
    assert "id" not in header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 8}
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<f4"), logits.ravel())
