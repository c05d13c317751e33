"""Every V2 datatype ONNX Runtime serves, raw (tritonclient) and typed, equals onnxruntime."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.triton_remote import TritonRemote, tensor
from tests.support.v2_models import DATATYPES, build_datatype_root, identity_name

TEXT = ["héllo", "", "日本語", "a b"]
SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, False, True],
    "UINT8": [0, 255, 7, 128],
    "UINT16": [0, 65535, 7, 300],
    "UINT32": [0, 2**32 - 1, 7, 70000],
    "UINT64": [0, 2**64 - 1, 7, 2**40],
    "INT8": [-128, 127, 0, -1],
    "INT16": [-(2**15), 2**15 - 1, 0, -1],
    "INT32": [-(2**31), 2**31 - 1, 0, -1],
    "INT64": [-(2**63), 2**63 - 1, 0, -1],
    "FP16": [0.5, -1.25, 65504.0, 0.000999],
    "FP32": [0.1, -3.0e38, 1e-30, 7.0],
    "FP64": [0.1, -1e300, 5e-324, 7.0],
    "BYTES": [t.encode() for t in TEXT],
}
# Typed contents field of each datatype (FP16 has none).
FIELDS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def sample(datatype: str) -> np.ndarray:
    dtype = DATATYPES[datatype][1]
    if dtype == "object":
        array = np.empty(4, dtype=object)
        array[:] = SAMPLES[datatype]
        return array.reshape(2, 2)
    return np.array(SAMPLES[datatype], dtype=dtype).reshape(2, 2)


def onnxruntime_identity(root: Path, datatype: str, array: np.ndarray) -> np.ndarray:
    """What onnxruntime itself returns for this input (strings go in as str)."""
    path = root / identity_name(datatype) / "1" / "model.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = array
    if array.dtype == object:
        feed = np.vectorize(lambda b: b.decode(), otypes=[object])(array)
    result: np.ndarray = session.run(None, {"in": feed})[0]
    if result.dtype == object:
        result = np.vectorize(lambda s: s.encode(), otypes=[object])(result)
    return result


@pytest.fixture
def datatype_root(tmp_path: Path) -> Path:
    return build_datatype_root(tmp_path / "datatypes")


@pytest.fixture
def triton_types(datatype_root: Path, triton_worker: TritonRemote) -> Iterator[TritonRemote]:
    running = ThreadedGateway(gateway_settings(datatype_root, default_model=""))
    triton_worker.connect(running.target)
    yield triton_worker
    running.stop()


def test_metadata_names_every_datatype(triton_types: TritonRemote) -> None:
    for datatype in DATATYPES:
        metadata = triton_types.call(
            "get_model_metadata", model_name=identity_name(datatype), as_json=True
        )
        assert metadata["inputs"] == [{"name": "in", "datatype": datatype, "shape": ["-1", "2"]}]
        assert metadata["outputs"][0]["datatype"] == datatype


@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_raw_round_trip(triton_types: TritonRemote, datatype_root: Path, datatype: str) -> None:
    array = sample(datatype)
    answer = triton_types.infer(identity_name(datatype), [tensor("in", array)])
    (output,) = answer.response["outputs"]
    assert output["datatype"] == datatype
    expected = onnxruntime_identity(datatype_root, datatype, array)
    np.testing.assert_array_equal(answer.outputs["out"], expected)
    np.testing.assert_array_equal(answer.outputs["out"], array)


def typed_values(datatype: str, array: np.ndarray) -> list[Any]:
    if datatype == "BYTES":
        return [base64.b64encode(e).decode() for e in array.reshape(-1)]
    return [v.item() for v in array.reshape(-1)]


def parse_typed(datatype: str, values: list[Any]) -> np.ndarray:
    dtype = DATATYPES[datatype][1]
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = [base64.b64decode(v) for v in values]
        return array.reshape(2, 2)
    if dtype.startswith(("int", "uint")):  # protobuf JSON writes 64-bit integers as strings
        values = [int(v) for v in values]
    return np.array(values, dtype=dtype).reshape(2, 2)


@pytest.mark.parametrize("datatype", list(FIELDS))
def test_typed_round_trip(triton_types: TritonRemote, datatype_root: Path, datatype: str) -> None:
    array = sample(datatype)
    field = FIELDS[datatype]
    response = triton_types.send(
        {
            "model_name": identity_name(datatype),
            "inputs": [
                {
                    "name": "in",
                    "datatype": datatype,
                    "shape": [2, 2],
                    "contents": {field: typed_values(datatype, array)},
                }
            ],
        }
    )
    (output,) = response["outputs"]
    assert output["datatype"] == datatype
    assert "raw_output_contents" not in response
    got = parse_typed(datatype, output["contents"][field])
    np.testing.assert_array_equal(got, onnxruntime_identity(datatype_root, datatype, array))
    np.testing.assert_array_equal(got, array)


def test_fp16_output_answers_raw_even_to_a_typed_request(triton_types: TritonRemote) -> None:
    """FP16 has no typed field, so a response holding FP16 comes in raw form."""
    values = [0.5, -1.25, 65504.0, 3.0]
    response = triton_types.send(
        {
            "model_name": "to_half",
            "inputs": [
                {
                    "name": "in",
                    "datatype": "FP32",
                    "shape": [2, 2],
                    "contents": {"fp32_contents": values},
                }
            ],
        }
    )
    assert response["outputs"] == [{"name": "out", "datatype": "FP16", "shape": ["2", "2"]}]
    (raw,) = response["raw_output_contents"]
    got = np.frombuffer(base64.b64decode(raw), "<f2").reshape(2, 2)
    np.testing.assert_array_equal(got, np.array(values, np.float16).reshape(2, 2))
