"""Test support for model_tools: the digits artifacts every test file shares."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_tools.calibration import calibration_for_model
from model_tools.demo import LABELS, PREPROCESSING
from model_tools.digits import DigitsData, load_digits_data, normalize, train_digits_cnn
from model_tools.export import ExportConfig, ManifestOptions, export_model
from model_tools.quantize import QuantizeOptions, quantize_model

BIN = Path(sys.executable).parent
_SCRIPT = BIN / "model-tools"
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "model_tools.cli"]


def run_cli(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``model-tools`` CLI in a subprocess."""
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=180, cwd=cwd, env=env
    )


def assert_clean_failure(
    result: subprocess.CompletedProcess[str], message: str, code: int = 1
) -> None:
    """Exactly one ``model-tools[ <command>]: error:`` line on stderr, no traceback, exit
    ``code``."""
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.match(r"model-tools( [a-z]+)?: error: ", lines[0]), result.stderr
    assert message in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@dataclass(frozen=True)
class Digits:
    data: DigitsData
    fp32: Path
    int8: Path
    test_npz: Path
    calib_npz: Path


def build_digits(root: Path) -> Digits:
    """Train briefly (6 epochs), export FP32 with manifest, quantize static INT8."""
    data = load_digits_data()
    model = train_digits_cnn(data, epochs=6, progress=False)
    fp32 = root / "digits" / "1" / "model.onnx"
    export_model(
        model,
        fp32,
        ExportConfig(input_shape=(1, 1, 28, 28), output_names=("logits",)),
        ManifestOptions(name="digits", labels=LABELS, preprocessing=dict(PREPROCESSING)),
        normalize(data.test_images[:16]),
    )
    test_npz, calib_npz = root / "test.npz", root / "calib.npz"
    np.savez(test_npz, x=data.test_images, y=data.test_labels)
    np.savez(calib_npz, x=data.train_images[:128])
    int8 = root / "digits-int8" / "1" / "model.onnx"
    quantize_model(
        fp32,
        int8,
        QuantizeOptions(mode="static", name="digits-int8", progress=False, bench_runs=5),
        calibration_for_model(fp32, calib_npz),
    )
    return Digits(data, fp32, int8, test_npz, calib_npz)
