"""A model exported with ``--static-batch``: its bundles carry golden samples it can run,
and a real gateway replays them when the bundle is pushed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edge_contracts.bundle.verify import read_unverified
from model_tools.calibration import calibration_for_model
from model_tools.digits import DigitsCNN
from model_tools.errors import ToolError
from model_tools.evaluate import evaluate_models
from model_tools.export import ExportConfig, ManifestOptions, export_model
from model_tools.manifest_io import image_preprocessing
from model_tools.packaging import golden_count, package_model
from model_tools.quantize import QuantizeOptions, quantize_model
from tests.support.digits_model import BIN, run_cli
from tests.support.paths import REPO
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.slow
TOKEN = "static-token"


def _push(target: str, bundle: Path) -> dict[str, str]:
    done = subprocess.run(
        [str(BIN / "edge-client"), "--target", target, "--token", TOKEN, "push", str(bundle),
         "--json", "--quiet"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_golden_samples_for_a_fixed_batch_model_run_here_and_on_the_gateway(
    tmp_path: Path,
) -> None:
    model = tmp_path / "fixed" / "1" / "model.onnx"
    exported = run_cli(
        "export", "model_tools.digits:DigitsCNN", "--input-shape", "1,1,28,28", "-o", model,
        "--static-batch", "--output-names", "logits", "--mean", "0.5", "--std", "0.5",
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    keys = tmp_path / "keys"
    assert run_cli("keygen", "--out", keys / "release.key").returncode == 0
    images = tmp_path / "images"
    shutil.copytree(REPO / "examples" / "images", images)
    bundles = []
    for version, golden in (("1", "random"), ("2", str(images))):
        bundle = tmp_path / f"fixed-{version}.edgebundle"
        packaged = run_cli(
            "package", model, "-o", bundle, "--key", keys / "release.key", "--golden", golden,
            "--model-version", version, "--json",
        )  # fmt: skip
        assert packaged.returncode == 0, packaged.stderr
        assert "golden/samples.npz" in json.loads(packaged.stdout)["files"]
        assert read_unverified(bundle).document["golden"]["count"] == 1  # one batch of 1
        bundles.append(bundle)
    (tmp_path / "models").mkdir()
    server = ServerProcess(
        ["--model-root", str(tmp_path / "models"), "--trusted-keys", str(keys),
         "--management-token", TOKEN, "--rollback-window-seconds", "0"]
    )  # fmt: skip
    try:  # listening, with nothing to serve until the first push
        for version, bundle in zip(("1", "2"), bundles, strict=True):
            result = _push(server.target, bundle)
            assert (result["stage"], result["model_version"]) == ("ACTIVE", version), result
    finally:
        assert server.terminate() == 0


def test_a_fixed_batch_of_two_keeps_one_batch_and_refuses_fewer_inputs(tmp_path: Path) -> None:
    model = tmp_path / "pair.onnx"
    config = ExportConfig(input_shape=(2, 1, 28, 28), dynamic_batch=False)
    export_model(DigitsCNN(), model, config, ManifestOptions(name="pair"))
    inputs = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    assert golden_count(model, 4) == 2
    bundle = package_model(model, tmp_path / "pair.edgebundle", golden_inputs=inputs).path
    assert read_unverified(bundle).document["golden"]["count"] == 2
    with pytest.raises(ToolError, match="batches of exactly 2; give at least 2 golden inputs"):
        package_model(model, tmp_path / "few.edgebundle", golden_inputs=inputs[:1])


def test_evaluate_and_quantize_run_a_fixed_batch_model_in_the_batches_it_takes(
    tmp_path: Path,
) -> None:
    model = tmp_path / "pair" / "1" / "model.onnx"
    config = ExportConfig(input_shape=(2, 1, 28, 28), dynamic_batch=False)
    pre = image_preprocessing((2, 1, 28, 28), mean=(0.5,), std=(0.5,))
    export_model(DigitsCNN(), model, config, ManifestOptions(name="pair", preprocessing=pre))
    data = tmp_path / "five.npz"  # an odd count: the last batch is padded, then trimmed
    rng = np.random.default_rng(1)
    np.savez(data, x=rng.integers(0, 256, (5, 28, 28), np.uint8), y=np.arange(5))
    report = evaluate_models([model], data, batch_size=32, progress=False)
    assert report.samples == 5
    out = tmp_path / "pair-int8" / "1" / "model.onnx"
    options = QuantizeOptions(mode="static", progress=False, bench_runs=2)
    result = quantize_model(model, out, options, calibration_for_model(model, data))
    assert result.identity == ("pair-int8", "1") and result.latency_after_ms > 0
    assert evaluate_models([model, out], data, progress=False).samples == 5
