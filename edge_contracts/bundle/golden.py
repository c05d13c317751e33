"""Golden samples: a few inputs with the outputs the signed model must reproduce.

``golden/samples.npz`` holds arrays ``in.<input name>`` and ``out.<output name>``
(batch first). The manifest's ``golden`` block names them and the tolerances; a
gateway runs the inputs through the freshly loaded model and refuses to activate
it when any output differs by more than ``atol + rtol * |expected|``.
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_contracts.bundle.format import golden_key
from edge_contracts.errors import BundleError

__all__ = ["GoldenSamples", "compare_golden", "encode_golden", "load_golden"]

_MAX_GOLDEN_BYTES = 64 << 20
_NPY_LOCK = threading.Lock()


@dataclass(frozen=True)
class GoldenSamples:
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    atol: float
    rtol: float


def encode_golden(inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of golden/samples.npz (uncompressed, deterministic member order)."""
    arrays = {golden_key("in", k): np.asarray(v) for k, v in sorted(inputs.items())}
    arrays.update({golden_key("out", k): np.asarray(v) for k, v in sorted(outputs.items())})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def load_golden(path: Path, description: Mapping[str, Any]) -> GoldenSamples:
    """Read golden samples from an extracted bundle folder's file ``path``."""
    try:
        if path.stat().st_size > _MAX_GOLDEN_BYTES:
            raise BundleError(f"{path} is larger than {_MAX_GOLDEN_BYTES} bytes")
        if not zipfile.is_zipfile(path):  # else numpy tries pickle and suggests allow_pickle
            raise BundleError(f"{path}: golden samples must be an .npz archive")
        # One reader at a time: np.load parses .npy headers with ast.literal_eval, which
        # CPython 3.11.7 can corrupt when two threads compile at once (gh-106905).
        with _NPY_LOCK, np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except BundleError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: unreadable golden samples ({exc})") from None
    inputs = {k[3:]: v for k, v in arrays.items() if k.startswith("in.")}
    outputs = {k[4:]: v for k, v in arrays.items() if k.startswith("out.")}
    if not inputs or not outputs:
        raise BundleError(f"{path}: golden samples need 'in.*' and 'out.*' arrays")
    try:
        atol = float(description.get("atol", 1e-3))
        rtol = float(description.get("rtol", 1e-3))
    except (TypeError, ValueError):
        raise BundleError("golden atol/rtol must be numbers") from None
    return GoldenSamples(inputs, outputs, atol, rtol)


def compare_golden(golden: GoldenSamples, actual: Mapping[str, np.ndarray]) -> list[str]:
    """Human-readable mismatches between actual and expected outputs (empty = pass)."""
    problems: list[str] = []
    for name, expected in golden.outputs.items():
        got = actual.get(name)
        if got is None:
            problems.append(f"output {name!r} missing")
            continue
        got = np.asarray(got)
        if got.shape != expected.shape:
            problems.append(
                f"output {name!r} has shape {list(got.shape)}, expected {list(expected.shape)}"
            )
            continue
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        bound = golden.atol + golden.rtol * np.abs(expected.astype(np.float64))
        if np.any(diff > bound):
            problems.append(f"output {name!r} differs by up to {float(diff.max()):.3g}")
    return problems
