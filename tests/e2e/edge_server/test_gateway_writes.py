"""The gateway writes only under --model-root and its --feedback-db: nothing in the
folder it was started from, nothing beside the model root; its shared-memory state
file (/dev/shm) is removed when it stops."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from edge_server.v2.shared_memory import state_file_for
from tests.support.bundles import build_bundle, make_keys
from tests.support.lifecycle import GRAY_MANIFEST, gray_png
from tests.support.model_factory import build_model_root, linear_classifier
from tests.support.processes import BIN, ServerProcess

pytestmark = pytest.mark.slow


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _client(target: str, *args: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    done = subprocess.run(
        [str(BIN / "edge-client"), "--target", target, *args],
        capture_output=True, text=True, timeout=60, env=environ,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr  # 1: a rejected push is fine here


def test_gateway_writes_only_under_its_model_root_and_feedback_db(tmp_path: Path) -> None:
    cwd = tmp_path / "started-here"
    cwd.mkdir()
    root = build_model_root(tmp_path / "models")
    key, public = make_keys(tmp_path / "keys")
    feedback = tmp_path / "feedback" / "outbox.sqlite3"
    image = tmp_path / "gray.png"
    image.write_bytes(gray_png())
    model = linear_classifier(tmp_path / "src" / "model.onnx", seed=3)
    accepted = build_bundle(tmp_path / "fresh.edgebundle", model, "fresh", "1", key, GRAY_MANIFEST)
    rejected = build_bundle(tmp_path / "other.edgebundle", model, "other", "1", None, GRAY_MANIFEST)
    before = set(tmp_path.iterdir())
    gateway = ServerProcess(
        ["--model-root", str(root), "--trusted-keys", str(public), "--feedback-db", str(feedback),
         "--orchestrator", f"127.0.0.1:{_closed_port()}", "--rollback-window-seconds", "0"],
        cwd=cwd,
    )  # fmt: skip
    try:
        gateway.wait_serving()
        state = state_file_for("127.0.0.1", gateway.grpc_port)
        for _ in range(3):
            _client(gateway.target, "predict", str(image))
        _client(gateway.target, "push", "--quiet", str(accepted))
        _client(gateway.target, "push", "--quiet", str(rejected))
        _client(gateway.target, "models")
    finally:
        assert gateway.terminate() == 0
    assert list(cwd.iterdir()) == []
    created = set(tmp_path.iterdir()) - before
    assert created == {feedback.parent}, created
    assert not state.exists(), f"{state} left behind"
    # The gateway did write: the pushed version, both ledgers and the outbox.
    assert (root / "fresh" / "1" / "model.onnx").is_file()
    assert (root / "other" / "versions.json").is_file() and feedback.is_file()
