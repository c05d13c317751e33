"""The shipped demo artefacts (``make demo-model``): two signed versions of ``digits``, and
the README's push / activate / rollback walk-through with them on a real gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from edge_contracts.bundle.signing import load_public_key
from edge_contracts.bundle.verify import verify_bundle
from model_tools.evaluate import evaluate_models
from model_tools.manifest_io import read_manifest
from tests.support.digits_model import BIN
from tests.support.paths import REPO
from tests.support.processes import ServerProcess

EXAMPLES = REPO / "examples"
V1_MODEL = EXAMPLES / "models" / "digits" / "1" / "model.onnx"
V2_BUNDLE = EXAMPLES / "bundles" / "digits-2.edgebundle"
PUBLIC_KEY = EXAMPLES / "keys" / "demo-signing.pub"
IMAGE = sorted((EXAMPLES / "images").glob("digit_*.png"))[0]
TOKEN = "demo-token"


def test_the_second_version_ships_signed_evaluated_and_compatible() -> None:
    assert sorted(p.name for p in (EXAMPLES / "models" / "digits").iterdir()) == ["1"]
    bundle = verify_bundle(V2_BUNDLE, [load_public_key(PUBLIC_KEY)])
    document = bundle.manifest.document
    assert (bundle.manifest.name, bundle.manifest.version) == ("digits", "2")
    assert document["lineage"] == {"parent_version": "1"}
    assert not bundle.manifest.breaking_change and document["golden"]["count"] == 4
    v1 = read_manifest(V1_MODEL.with_name("manifest.json"))
    for field in ("inputs", "outputs", "labels", "preprocessing"):
        assert document[field] == v1[field], field
    evaluation = document["evaluation"]
    assert evaluation["dataset"] == "digits-test.npz" and evaluation["samples"] == 360
    assert evaluation["top1"] > 0.95 and evaluation["reference_top1"] == v1["evaluation"]["top1"]
    report = json.loads((EXAMPLES / "demo-report.json").read_text())
    shipped = {b["path"]: b for b in report["bundles"]}["examples/bundles/digits-2.edgebundle"]
    assert shipped["size_bytes"] == V2_BUNDLE.stat().st_size
    assert (shipped["name"], shipped["version"], shipped["top1"]) == (
        "digits",
        "2",
        evaluation["top1"],
    )


@pytest.mark.parametrize(
    ("model", "bundle"), [("digits", "digits-1"), ("digits-int8", "digits-int8-1")]
)
def test_the_shipped_versions_carry_the_drift_reference_of_their_own_predictions(
    model: str, bundle: str
) -> None:
    """`make demo-model` records the reference the gateway's drift monitor needs, and it is
    the one these very files produce on the held-out split (not left from older weights)."""
    path = EXAMPLES / "models" / model / "1" / "model.onnx"
    report = evaluate_models([path], EXAMPLES / "data" / "digits-test.npz", progress=False)
    recomputed = report.references[0].to_dict()
    shipped = read_manifest(path.with_name("manifest.json"))["reference"]
    signed = verify_bundle(
        EXAMPLES / "bundles" / f"{bundle}.edgebundle", [load_public_key(PUBLIC_KEY)]
    )
    assert shipped == recomputed == signed.manifest.document["reference"]
    assert shipped["samples"] == 360 and sum(shipped["class_counts"]) == 360
    v2 = verify_bundle(V2_BUNDLE, [load_public_key(PUBLIC_KEY)]).manifest.document["reference"]
    assert v2["samples"] == 360 and v2["dataset"] == "digits-test.npz"


def client(target: str, *args: str) -> Any:
    done = subprocess.run(
        [str(BIN / "edge-client"), "--target", target, "--token", TOKEN, *args, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def served_version(target: str) -> str:
    version: str = client(target, "predict", str(IMAGE))[0]["model_version"]
    return version


@pytest.mark.slow
def test_readme_push_activate_rollback_with_the_shipped_bundles(tmp_path: Path) -> None:
    root = tmp_path / "models"
    shutil.copytree(EXAMPLES / "models" / "digits", root / "digits")
    server = ServerProcess(
        ["--model-root", str(root), "--trusted-keys", str(EXAMPLES / "keys"),
         "--management-token", TOKEN, "--rollback-window-seconds", "0"]
    )  # fmt: skip
    try:
        server.wait_serving()
        staged = client(server.target, "push", str(V2_BUNDLE), "--stage", "--quiet")
        assert (staged["model_name"], staged["model_version"]) == ("digits", "2"), staged
        assert staged["stage"] == "STAGED" and served_version(server.target) == "1"
        client(server.target, "activate", "digits", "2")
        assert served_version(server.target) == "2"
        client(server.target, "rollback", "digits", "--reason", "drift on line 3")
        assert served_version(server.target) == "1"
    finally:
        assert server.terminate() == 0
