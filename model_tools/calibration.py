"""Feeding calibration data to ONNX Runtime's static quantizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
from tqdm import tqdm

from edge_contracts.manifest import parse_manifest
from model_tools.datasets import load_calibration_data
from model_tools.manifest_io import find_manifest
from model_tools.onnx_model import graph_signature, load_onnx

__all__ = ["METHODS", "ArrayDataReader", "calibration_for_model"]

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class ArrayDataReader(CalibrationDataReader):  # type: ignore[misc]
    """Hands an in-memory array to the calibrator batch by batch, with a progress bar."""

    def __init__(
        self, input_name: str, x: np.ndarray, batch_size: int = 16, progress: bool = True
    ) -> None:
        self._input_name = input_name
        self._x = x
        self._batch_size = max(1, batch_size)
        self._progress = progress
        self._position = 0
        self._bar: tqdm[int] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._bar is None:
            self._bar = tqdm(
                total=len(self._x), desc="calibrate", unit="sample", disable=not self._progress
            )
        if self._position >= len(self._x):
            self._bar.close()
            return None
        batch = self._x[self._position : self._position + self._batch_size]
        self._position += len(batch)
        self._bar.update(len(batch))
        return {self._input_name: batch}

    def rewind(self) -> None:
        self._position = 0
        self._bar = None


def calibration_for_model(
    model_path: Path,
    source: Path,
    manifest_path: Path | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """Calibration inputs for ``model_path``, preprocessed with its manifest when images."""
    model = load_onnx(model_path, load_weights=False)
    inputs, _ = graph_signature(model)
    manifest = find_manifest(model_path, manifest_path)
    pre = parse_manifest(manifest).preprocessing if manifest else None
    return load_calibration_data(source, pre, inputs[0].shape, limit)
