"""The real CLIs as subprocesses: edge-server serving the shipped demo model and
edge-client predicting, listing, pushing, activating and rolling back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.processes import ServerProcess

CLIENT = [str(Path(sys.executable).parent / "edge-client")]
DEMO_IMAGES = sorted((REPO / "examples" / "images").glob("digit_*.png"))

pytestmark = pytest.mark.slow


def client(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLIENT, "--target", target, *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def demo_gateway(tmp_path: Path) -> ServerProcess:
    root = tmp_path / "models"
    shutil.copytree(REPO / "examples" / "models" / "digits", root / "digits")
    server = ServerProcess(
        ["--model-root", str(root), "--trusted-keys", str(REPO / "examples" / "keys"),
         "--management-token", "demo-token", "--rollback-window-seconds", "0"]
    )  # fmt: skip
    server.wait_serving()
    yield server  # type: ignore[misc]
    assert server.terminate() == 0


def test_predict_health_models(demo_gateway: ServerProcess) -> None:
    assert DEMO_IMAGES, "examples/images holds the demo's held-out samples"
    done = client(demo_gateway.target, "predict", *map(str, DEMO_IMAGES), "--json", "--top-k", "3")
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert len(answers) == len(DEMO_IMAGES)
    for image, answer in zip(DEMO_IMAGES, answers, strict=True):
        expected = image.name.split("_")[1]  # digit_<label>_<index>.png
        assert answer["label"] == expected and answer["model_name"] == "digits"
        assert answer["confidence"] > 0.5 and len(answer["top_k"]) == 3
    human = client(demo_gateway.target, "predict", str(DEMO_IMAGES[0]))
    assert human.returncode == 0 and "class=" in human.stdout
    health = client(demo_gateway.target, "health", "--json")
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "SERVING"
    refused = client(demo_gateway.target, "models")
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    models = client(demo_gateway.target, "--token", "demo-token", "models", "--json")
    assert models.returncode == 0 and json.loads(models.stdout)[0]["name"] == "digits"
    missing = client(demo_gateway.target, "predict", "/nonexistent.png")
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_push_activate_rollback(demo_gateway: ServerProcess, tmp_path: Path) -> None:
    bundle = REPO / "examples" / "bundles" / "digits-int8-1.edgebundle"
    # The INT8 bundle is model digits-int8 version 1: a new model on this gateway.
    pushed = client(
        demo_gateway.target, "--token", "demo-token", "push", str(bundle), "--json", "--quiet"
    )
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert result["stage"] == "ACTIVE" and result["model_name"] == "digits-int8"
    answer = client(
        demo_gateway.target, "predict", str(DEMO_IMAGES[0]), "--model", "digits-int8", "--json"
    )
    assert json.loads(answer.stdout)[0]["model_version"] == "1"
    tampered = tmp_path / "tampered.edgebundle"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    rejected = client(demo_gateway.target, "--token", "demo-token", "push", str(tampered))
    assert rejected.returncode == 1
    no_target = client(demo_gateway.target, "--token", "demo-token", "rollback", "digits")
    assert no_target.returncode == 1 and "FAILED_PRECONDITION" in no_target.stderr
    unknown = client(demo_gateway.target, "--token", "demo-token", "activate", "digits", "9")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr


def test_unreachable_gateway_is_a_clear_error() -> None:
    done = client("127.0.0.1:1", "--timeout", "1", "health")
    assert done.returncode == 1
    assert "127.0.0.1:1" in done.stderr
