"""A second language: Node.js (@grpc/grpc-js + @grpc/proto-loader) calls V2 ModelInfer.

`make test` installs the Node packages (npm ci --prefix tests/node) before pytest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.support.paths import TESTS

NODE_DIR = TESTS / "node"
SCRIPT = NODE_DIR / "v2_infer.js"


def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "Node.js is not installed, so the second-language V2 client cannot run: install "
            "Node.js 18+ with npm (e.g. apt-get install nodejs npm), then run `make test`"
        )
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail(
            "the Node.js client's packages are not installed: run "
            "`npm ci --prefix tests/node --no-audit --no-fund` (make test does it)"
        )
    return [node, str(SCRIPT)]


def test_node_client_model_infer(gateway_sync_target: str, model_root: Path) -> None:
    done = subprocess.run(
        [*node_command(), gateway_sync_target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model_name"] == "tensoronly"
    assert result["model_version"] == "7"
    assert result["id"] == "node-1"
    sent = np.array(result["input"]["data"], np.float32).reshape(result["input"]["shape"])
    np.testing.assert_allclose(sent.ravel(), np.sin(np.arange(sent.size)), atol=1e-6)
    session = ort.InferenceSession(
        str(model_root / "tensoronly" / "7" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"input": sent})[0]
    (output,) = result["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == ("logits", "FP32", [2, 3])
    got = np.array(output["data"], np.float32).reshape(output["shape"])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
