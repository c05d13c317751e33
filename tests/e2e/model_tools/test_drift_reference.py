"""``model-tools evaluate --record`` writes the drift reference and ``package`` signs it into
the bundle: a changed reference breaks the signature, an unsound one is refused."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from edge_contracts.bundle.signing import load_public_key
from edge_contracts.bundle.verify import verify_bundle
from edge_contracts.bundle.writer import write_bundle
from edge_contracts.drift_reference import parse_reference
from edge_contracts.errors import IntegrityError
from tests.support.digits_model import assert_clean_failure, run_cli
from tests.support.drift_traffic import DIGITS_MODEL, DIGITS_TEST


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "digits" / "1"
    shutil.copytree(DIGITS_MODEL, folder)
    return folder / "model.onnx"


def test_evaluate_records_the_reference_and_package_signs_it(model: Path, tmp_path: Path) -> None:
    recorded = run_cli("evaluate", model, "--data", DIGITS_TEST, "--record", "--no-progress")
    assert recorded.returncode == 0, recorded.stderr
    manifest = json.loads((model.parent / "manifest.json").read_text())
    reference = parse_reference(manifest["reference"])
    data = np.load(DIGITS_TEST)
    assert reference.samples == len(data["y"]) == 360
    assert reference.dataset == "digits-test.npz" and len(reference.dataset_sha256) == 64
    # The model is good: its class mix follows the labels and it is mostly confident.
    labels = np.bincount(data["y"], minlength=10)
    assert np.abs(np.array(reference.class_counts) - labels).sum() <= 2 * 360 * 0.05
    assert reference.confidence_histogram[-1] > 0.8 * 360
    assert 0 <= reference.low_margin_share < 0.1 and reference.low_margin_threshold == 0.2

    key = tmp_path / "release.key"
    assert run_cli("keygen", "--out", key).returncode == 0
    bundle = tmp_path / "digits-1.edgebundle"
    packaged = run_cli("package", model, "-o", bundle, "--key", key)
    assert packaged.returncode == 0, packaged.stderr
    trusted = [load_public_key(tmp_path / "release.pub")]
    verified = verify_bundle(bundle, trusted)
    assert verified.manifest.document["reference"] == manifest["reference"]

    # The signature covers the reference: one changed count and the bundle is refused.
    with tarfile.open(bundle) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    document = json.loads(members["manifest.json"])
    document["reference"]["class_counts"][0] += 1
    document["reference"]["class_counts"][1] -= 1
    forged = tmp_path / "forged.edgebundle"
    write_bundle(
        forged,
        json.dumps(document, indent=2, sort_keys=True).encode(),
        {"model.onnx": members["model.onnx"]},
        members["signature"],
    )
    with pytest.raises(IntegrityError, match="signature"):
        verify_bundle(forged, trusted)


def test_package_refuses_an_unsound_reference(model: Path, tmp_path: Path) -> None:
    path = model.parent / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["reference"] = {
        "samples": 10,
        "class_counts": [10],
        "confidence_histogram": [10],
        "low_margin_share": 0.0,
    }
    path.write_text(json.dumps(manifest))
    result = run_cli("package", model, "-o", tmp_path / "bad.edgebundle")
    assert_clean_failure(
        result, "reference.confidence_histogram must be a list of 10 counts", code=1
    )
    assert not (tmp_path / "bad.edgebundle").exists()
