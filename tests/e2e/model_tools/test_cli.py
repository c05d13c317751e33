"""The ``model-tools`` CLI end to end: subprocesses, exit codes, JSON, errors without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from model_tools.cli import main
from tests.support.digits_model import Digits, assert_clean_failure, run_cli


@pytest.mark.parametrize(
    "command",
    ["export", "quantize", "evaluate", "bench", "inspect", "keygen", "package", "sign", "verify"],
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: model-tools" in capsys.readouterr().out


def test_export_subprocess_writes_a_checked_model(tmp_path: Path) -> None:
    out = tmp_path / "digits" / "1" / "model.onnx"
    result = run_cli(
        "export", "model_tools.digits:DigitsCNN", "--input-shape", "1,1,28,28", "-o", out,
        "--output-names", "logits", "--labels", "0,1,2,3,4,5,6,7,8,9", "--mean", "0.5",
        "--std", "0.5", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["max_abs_diff"] < 1e-4 and report["exporter"] == "dynamo"
    manifest = json.loads(out.with_name("manifest.json").read_text())
    assert manifest["name"] == "digits" and manifest["preprocessing"]["color_mode"] == "L"
    assert manifest["version"] == "1"
    failed = run_cli("export", "model_tools.mobilenet:Nope", "--input-shape", "1,4", "-o", out)
    assert_clean_failure(failed, "has no attribute 'Nope'")


def test_inspect_and_evaluate_gate_through_the_cli(digits: Digits, tmp_path: Path) -> None:
    inspected = run_cli("inspect", digits.int8, "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["quantization"] == "static-int8-qdq"
    passed = run_cli(
        "evaluate", digits.fp32, digits.int8, "--data", digits.test_npz, "--max-drop", "1",
        "--json", "--no-progress",
    )  # fmt: skip
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["passed"] is True
    broken = tmp_path / "broken.onnx"
    model = onnx.load(str(digits.fp32))
    weight = next(i for i in model.graph.initializer if len(i.dims) == 2)
    weight.CopyFrom(numpy_helper.from_array(np.zeros(tuple(weight.dims), np.float32), weight.name))
    onnx.save(model, str(broken))
    failed = run_cli(
        "evaluate", digits.fp32, broken, "--data", digits.test_npz, "--max-drop", "1",
        "--no-progress",
    )  # fmt: skip
    assert_clean_failure(failed, "more than --max-drop 1")
    assert "top-1 delta" in failed.stdout


def test_bad_inputs_fail_cleanly(digits: Digits, tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_text("not a model")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 3, 8, 8), np.float32))
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.onnx"
    cases = [
        (("inspect", tmp_path / "missing.onnx"), "not found"),
        (("quantize", fake, "-o", out), "not a valid ONNX model"),
        (("quantize", digits.fp32, "-o", out, "--calibration", wrong), "the model expects"),
        (("evaluate", digits.fp32, "--data", empty), "no labelled images found"),
        (("bench", fake, "--runs", "1"), "cannot load"),
        (("verify", fake, "--trusted-key", fake), "not an Ed25519 public key"),
    ]
    for args, message in cases:
        assert_clean_failure(run_cli(*args), message)
    usage = run_cli("export", "x:y")
    assert usage.returncode == 2 and "--input-shape" in usage.stderr


def test_bundle_commands(
    digits: Digits, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, other = tmp_path / "keys" / "release.key", tmp_path / "keys" / "other.key"
    assert main(["keygen", "--out", str(key)]) == 0
    assert "key id" in capsys.readouterr().out
    assert main(["keygen", "--out", str(other), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["key_id"]) == 16
    assert main(["keygen", "--out", str(key)]) == 1  # refuses to overwrite
    assert "pass --force" in capsys.readouterr().err
    bundle = tmp_path / "digits-1.edgebundle"
    args = ["package", str(digits.fp32), "-o", str(bundle), "--key", str(key)]
    assert main([*args, "--golden", str(digits.calib_npz), "--golden-count", "3", "--json"]) == 0
    packaged = json.loads(capsys.readouterr().out)
    assert packaged["name"] == "digits" and packaged["signed_by"]
    pub = str(key.with_suffix(".pub"))
    assert main(["verify", str(bundle), "--trusted-key", pub, "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["valid"] and set(verified["files"]) == {"model.onnx", "golden/samples.npz"}
    assert main(["verify", str(bundle), "--trusted-key", str(other.with_suffix(".pub"))]) == 1
    assert "not among the trusted keys" in capsys.readouterr().err
    resigned = tmp_path / "resigned.edgebundle"
    assert main(["sign", str(bundle), "--key", str(other), "-o", str(resigned)]) == 0
    assert main(["verify", str(resigned), "--trusted-key", str(other.with_suffix(".pub"))]) == 0
    target = tmp_path / "models" / "digits" / "1"
    assert main(["verify", str(bundle), "--trusted-key", pub, "--extract", str(target)]) == 0
    assert (target / "model.onnx").read_bytes() == digits.fp32.read_bytes()
    assert json.loads((target / "manifest.json").read_text())["golden"]["count"] == 3
    shutil.rmtree(target)


def test_cli_and_non_export_commands_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import model_tools.cli as cli\n"
        "cli.build_parser()\n"
        "import model_tools.quantize, model_tools.evaluate, model_tools.bench\n"
        "import model_tools.packaging, model_tools.inspect_model\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_quantize_json_stays_parseable_with_entropy_calibration(
    digits: Digits, tmp_path: Path
) -> None:
    out = tmp_path / "entropy" / "1" / "model.onnx"
    result = run_cli(
        "quantize", digits.fp32, "-o", out, "--mode", "static", "--method", "entropy",
        "--calibration", digits.calib_npz, "--calibration-limit", "16", "--bench-runs", "3",
        "--name", "digits-entropy", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # the calibrator's own prints must not reach stdout
    assert report["mode"] == "static" and report["size_ratio"] < 0.3
    manifest = json.loads(out.with_name("manifest.json").read_text())
    assert manifest["name"] == "digits-entropy"
    assert manifest["quantization"]["method"] == "entropy"
    assert manifest["quantization"]["calibration_samples"] == 16
