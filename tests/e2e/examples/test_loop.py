"""`python -m examples.loop` end to end, smaller than `make loop-demo`: one pull gateway,
200 shifted digits, two epochs. What it claims is checked from outside: the gateway's
own model store and the orchestrator's registry, the exported files, and the two model
files scored again here."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_tools.digits import normalize
from model_tools.sessions import open_session
from tests.support.orchestrator import cli_json
from tests.support.paths import REPO

pytestmark = pytest.mark.slow
SMALL = ("--gateways", "1", "--traffic", "200", "--epochs", "2", "--evidence-requests", "100")


def top1(model: Path, data: Path) -> float:
    arrays = np.load(data)
    logits = open_session(model).run(None, {"input": normalize(arrays["x"])})[0]
    return float(np.mean(np.argmax(logits, axis=1) == arrays["y"]))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("loop") / "work"
    loop = subprocess.Popen(
        [sys.executable, "-m", "examples.loop", *SMALL, "--work", str(work), "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = loop.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        loop.terminate()  # the loop stops the servers it started on SIGTERM
        out, err = loop.communicate(timeout=60)
        raise AssertionError(f"the loop did not finish within 240 s:\n{err}") from None
    assert loop.returncode == 0, err
    return work, json.loads(out)


@pytest.mark.timeout(300)
def test_the_gateway_serves_the_fine_tuned_version_after_a_gated_rollout(
    loop: tuple[Path, dict[str, Any]],
) -> None:
    work, summary = loop
    store = work / "loop-gw-1" / "digits"
    assert (store / "ACTIVE").read_text().strip() == "2"
    assert sha256(store / "2" / "model.onnx") == sha256(work / "src/digits/2/model.onnx")
    db, artifacts = f"sqlite:///{work / 'orchestrator.db'}", work / "artifacts"
    [gateway] = cli_json("gateways", db=db, artifacts=artifacts)
    assert gateway["id"] == "loop-gw-1" and gateway["mode"] == "pull"
    assert {"model": "digits", "running": "2"}.items() <= gateway["models"][0].items()
    [rollout] = cli_json("rollouts", db=db, artifacts=artifacts)
    assert (rollout["version"], rollout["state"]) == ("2", "SUCCEEDED")
    assert summary["rollout"]["gated"]  # this deploy has --gate shadow
    [target] = summary["rollout"]["targets"]
    assert target["evidence"]["requests"] >= 100 and summary["served_during_deploy"].get("2")


def test_it_trained_on_the_exported_hard_examples_with_true_labels(
    loop: tuple[Path, dict[str, Any]],
) -> None:
    work, summary = loop
    exported = sorted((work / "hard").rglob("*.png"))
    labels = json.loads((work / "hard" / "labels.json").read_text())
    assert len(exported) == summary["hard_examples_used"] > 0
    assert sorted(labels) == sorted(str(p.relative_to(work / "hard")) for p in exported)
    index = [json.loads(line) for line in (work / "hard" / "index.jsonl").open()]
    assert {e["model_version"] for e in index} == {"1"}
    assert {e["gateway_id"] for e in index} == {"loop-gw-1"}
    # Hard: the gateway was unsure (or, where it was sure, these would not be here).
    assert all(e["confidence"] < 0.9 or e["reason"] != "low_confidence" for e in index)
    # The predicted label names the folder; the true label often differs from it.
    wrong = sum(Path(f).parts[0] != str(label) for f, label in labels.items())
    assert wrong > 0
    assert summary["traffic"]["hard_examples"] == len(exported)
    aggregates = json.loads((work / "aggregates.json").read_text())  # `feedback --json`
    assert sum(g["predictions"] for g in aggregates["gateways"]) >= 200
    assert sum(g["hard_examples"] for g in aggregates["gateways"]) == len(exported)


def test_the_candidate_is_better_on_shifted_digits_and_carries_a_reference(
    loop: tuple[Path, dict[str, Any]],
) -> None:
    work, summary = loop
    running, candidate = work / "src/digits/1/model.onnx", work / "src/digits/2/model.onnx"
    shifted = work / "shifted-test.npz"
    before, after = top1(running, shifted), top1(candidate, shifted)
    assert after > before + 0.05, (before, after)
    assert (before, after) == pytest.approx(
        (summary["shifted"]["running"], summary["shifted"]["candidate"])
    )
    clean = REPO / "examples" / "data" / "digits-test.npz"
    assert top1(candidate, clean) >= top1(running, clean) - 0.01  # evaluate's --max-drop 1.0
    manifest = json.loads(candidate.with_name("manifest.json").read_text())
    assert manifest["reference"]["samples"] == 720 and manifest["lineage"]["parent_version"] == "1"
    assert manifest["feedback"]["policy"] == "hard_examples"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--gateways", "0"), "--gateways takes 1..8, --traffic 10..1437"),
        (("--epochs", "0"), "--epochs and --evidence-requests take a positive count"),
        (("--work", "."), "--work . exists; give a new folder (the demo fills it)"),
    ],
)
def test_mistakes_are_one_line_before_anything_starts(args: tuple[str, ...], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.loop", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"python -m examples.loop: error: {message}"), line
