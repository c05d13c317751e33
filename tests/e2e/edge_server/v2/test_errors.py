"""Every V2 error case gets its status code and a precise message (through tritonclient)."""

from __future__ import annotations

import base64
import struct
from typing import Any

import numpy as np
import pytest

from tests.support.triton_remote import TritonError, TritonRemote, tensor

FP32_INPUT = "input: FP32 [-1, 2, 4, 4]"


def ones(shape: tuple[int, ...], dtype: str = "float32") -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fp32_input(shape: list[int], **extra: Any) -> dict[str, Any]:
    return {"name": "input", "datatype": "FP32", "shape": shape, **extra}


def raw_request(inputs: list[dict[str, Any]], raw: list[bytes], **extra: Any) -> dict[str, Any]:
    return {
        "model_name": "tensoronly",
        "inputs": inputs,
        "raw_input_contents": [b64(r) for r in raw],
        **extra,
    }


def error_of(call: Any) -> TritonError:
    with pytest.raises(TritonError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    "inputs, expected",
    [
        pytest.param(
            [tensor("input", ones((1, 2, 4, 5)))],
            f"input 'input' has shape [1, 2, 4, 5], which does not fit {FP32_INPUT}",
            id="wrong-shape",
        ),
        pytest.param(
            [tensor("input", ones((1, 2, 4)))],
            "has shape [1, 2, 4], which does not fit",
            id="wrong-rank",
        ),
        pytest.param(
            [tensor("input", ones((1, 2, 4, 4), "int32"))],
            f"input 'input' of model 'tensoronly' is {FP32_INPUT}; the request sent INT32",
            id="wrong-datatype",
        ),
        pytest.param(
            [tensor("inp", ones((1, 2, 4, 4)))],
            f"'inp' is not an input of model 'tensoronly'; its inputs are {FP32_INPUT}",
            id="wrong-input-name",
        ),
        pytest.param(
            [tensor("input", ones((1, 2, 4, 4))), tensor("input", ones((1, 2, 4, 4)))],
            "input 'input' appears twice",
            id="duplicate-input",
        ),
        pytest.param(
            [tensor("input", np.array([b"not an image"], dtype=object))],
            "model 'tensoronly' cannot take encoded images: its manifest has no preprocessing",
            id="bytes-to-a-tensor-only-model",
        ),
    ],
)
def test_bad_inputs_are_invalid_argument(
    triton: TritonRemote, inputs: list[dict[str, Any]], expected: str
) -> None:
    error = error_of(lambda: triton.infer("tensoronly", inputs))
    assert error.status == "INVALID_ARGUMENT"
    assert expected in error.message


@pytest.mark.parametrize(
    "request_body, expected",
    [
        pytest.param(
            raw_request(
                [fp32_input([1, 2, 4, 4], contents={"fp32_contents": [0.0] * 32})],
                [bytes(128)],
            ),
            "input 'input' has typed contents while the request also carries raw_input_contents",
            id="mixed-raw-and-typed",
        ),
        pytest.param(
            raw_request([fp32_input([1, 2, 4, 4])], [bytes(100)]),
            "raw contents are 100 bytes but FP32 [1, 2, 4, 4] needs 128",
            id="raw-size",
        ),
        pytest.param(
            raw_request([fp32_input([1, 2, 4, 4])], [bytes(128), bytes(128)]),
            "raw_input_contents has 2 entries for 1 inputs not in shared memory",
            id="raw-count",
        ),
        pytest.param(
            raw_request([fp32_input([1, 2, 4, 4], datatype="FLOAT32")], [bytes(128)]),
            "'FLOAT32' is not a V2 datatype; use one of BOOL, UINT8",
            id="unknown-datatype",
        ),
        pytest.param(
            raw_request([fp32_input([1, 2, 4, 4], datatype="BF16")], [bytes(64)]),
            "BF16 is not served",
            id="bf16",
        ),
        pytest.param(
            raw_request([fp32_input([-1, 2, 4, 4])], [bytes(128)]),
            "shape [-1, 2, 4, 4] has a negative dimension",
            id="negative-dimension",
        ),
        pytest.param(
            {"model_name": "tensoronly", "inputs": [fp32_input([1, 2, 4, 4])]},
            "input 'input' has no data: set its contents, raw_input_contents or a "
            "shared_memory_region",
            id="no-data",
        ),
        pytest.param(
            {
                "model_name": "tensoronly",
                "inputs": [fp32_input([1, 2, 4, 4], contents={"fp32_contents": [0.0] * 31})],
            },
            "fp32_contents holds 31 values; shape [1, 2, 4, 4] needs 32",
            id="typed-count",
        ),
        pytest.param(
            {
                "model_name": "tensoronly",
                "inputs": [fp32_input([1, 2, 4, 4], contents={"int_contents": [0] * 32})],
            },
            "a FP32 tensor's values go in fp32_contents, not int_contents",
            id="typed-wrong-field",
        ),
        pytest.param(
            {
                "model_name": "tensoronly",
                "inputs": [
                    fp32_input(
                        [1, 2, 4, 4], datatype="FP16", contents={"fp32_contents": [0.0] * 32}
                    )
                ],
            },
            "FP16 has no typed contents field; send it in raw_input_contents",
            id="typed-fp16",
        ),
        pytest.param(
            {
                "model_name": "tensoronly",
                "inputs": [fp32_input([2], datatype="INT8", contents={"int_contents": [1, 300]})],
            },
            "a value in int_contents does not fit INT8",
            id="typed-out-of-range",
        ),
        pytest.param(
            raw_request(
                [fp32_input([2], datatype="BYTES")], [struct.pack("<I", 3) + b"abc" + b"\x05\x00"]
            ),
            "a BYTES length prefix is cut short at byte 7",
            id="bytes-prefix-cut",
        ),
        pytest.param(
            raw_request([fp32_input([1], datatype="BYTES")], [struct.pack("<I", 10) + b"abc"]),
            "BYTES element 0 claims 10 bytes but only 3 remain",
            id="bytes-element-short",
        ),
        pytest.param(
            raw_request([fp32_input([3], datatype="BYTES")], [struct.pack("<I", 1) + b"a"]),
            "holds 1 BYTES elements; the shape needs 3",
            id="bytes-count",
        ),
        pytest.param(
            raw_request(
                [fp32_input([1, 2, 4, 4])], [bytes(128)], outputs=[{"name": "probabilities"}]
            ),
            "requested output 'probabilities' is not an output of model 'tensoronly'; its "
            "outputs are logits: FP32 [-1, 3]",
            id="unknown-output",
        ),
        pytest.param(
            raw_request(
                [fp32_input([1, 2, 4, 4])],
                [bytes(128)],
                outputs=[{"name": "logits", "parameters": {"classification": {"int64_param": 2}}}],
            ),
            "output 'logits' asks for classification, an extension this server does not implement",
            id="classification",
        ),
    ],
)
def test_malformed_requests_are_invalid_argument(
    triton: TritonRemote, request_body: dict[str, Any], expected: str
) -> None:
    error = error_of(lambda: triton.send(request_body))
    assert error.status == "INVALID_ARGUMENT"
    assert expected in error.message


def test_undecodable_image_names_the_element(triton: TritonRemote) -> None:
    images = np.empty(2, dtype=object)
    images[:] = [b"", b"definitely not an image"]
    error = error_of(lambda: triton.infer("gray", [tensor("input", images[1:])]))
    assert error.status == "INVALID_ARGUMENT"
    assert "input 'input' element 0: image bytes are not a decodable" in error.message
    grid = np.empty((1, 2), dtype=object)
    grid[:] = [[b"a", b"b"]]
    error = error_of(lambda: triton.infer("gray", [tensor("input", grid)]))
    assert "its shape must be [N] or [N, 1]" in error.message


@pytest.mark.parametrize(
    "model, version, status, expected",
    [
        ("nope", "", "NOT_FOUND", "model 'nope' is not served here"),
        ("gray", "9", "NOT_FOUND", "model 'gray' has no version '9' (on disk: 1, 2)"),
        ("gray", "1", "FAILED_PRECONDITION", "version '1' is on disk but not active"),
    ],
)
def test_model_and_version_errors(
    triton: TritonRemote, model: str, version: str, status: str, expected: str
) -> None:
    x = tensor("input", ones((1, 1, 8, 8)))
    error = error_of(lambda: triton.infer(model, [x], model_version=version))
    assert error.status == status
    assert expected in error.message
    metadata = error_of(
        lambda: triton.call("get_model_metadata", model_name=model, model_version=version)
    )
    assert metadata.status == status


def test_unloaded_model_is_unavailable(triton: TritonRemote) -> None:
    triton.call("unload_model", model_name="tensoronly")
    error = error_of(lambda: triton.infer("tensoronly", [tensor("input", ones((1, 2, 4, 4)))]))
    assert error.status == "UNAVAILABLE"
    assert "model 'tensoronly' is unloaded; load it to serve it again" in error.message
    assert error_of(lambda: triton.call("get_model_config", model_name="tensoronly")).status == (
        "UNAVAILABLE"
    )
