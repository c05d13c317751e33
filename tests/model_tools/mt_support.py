"""Test support for model_tools: the digits artifacts every test file shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_tools.calibration import calibration_for_model
from model_tools.demo import LABELS, PREPROCESSING
from model_tools.digits import DigitsData, load_digits_data, normalize, train_digits_cnn
from model_tools.export import ExportConfig, ManifestOptions, export_model
from model_tools.quantize import QuantizeOptions, quantize_model


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
