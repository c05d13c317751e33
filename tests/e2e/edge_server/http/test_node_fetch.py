"""A second language over HTTP: Node's built-in fetch (FormData, JSON) against a real
gateway process; the V2 answer is checked against ONNX Runtime on the same model."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.http_gateway import DIGIT_3, MODELS
from tests.support.paths import TESTS

SCRIPT = TESTS / "node" / "http_fetch.js"


def test_node_fetch_predict_and_infer(base: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js 18+ is not installed (apt-get install nodejs): fetch is built in")
    done = subprocess.run(
        [node, str(SCRIPT), base, str(DIGIT_3)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["predict"]["status"] == 200
    assert result["predict"]["body"]["class_id"] == 3
    assert len(result["predict"]["body"]["top_k"]) == 2
    infer = result["infer"]
    assert infer["status"] == 200
    assert (infer["body"]["id"], infer["body"]["model_name"]) == ("node-1", "digits")
    (output,) = infer["body"]["outputs"]
    session = ort.InferenceSession(
        str(MODELS / "digits" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"input": np.zeros((1, 1, 28, 28), np.float32)})[0]
    np.testing.assert_allclose(np.array(output["data"]).reshape(output["shape"]), expected, 1e-5)
    assert result["wrong"]["status"] == 400
    assert result["wrong"]["body"]["code"] == "INVALID_ARGUMENT"
    assert "the request sent INT8" in result["wrong"]["body"]["error"]
