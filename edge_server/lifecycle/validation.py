"""Checks a loaded version must pass before it may serve (blocking; run in an executor).

1. The ONNX signature matches what the bundle manifest declares.
2. It is compatible with the active version (same input/output names, dtypes and
   fixed dimensions) unless the manifest declares ``breaking_change: true``.
3. Golden samples shipped in the bundle reproduce their expected outputs (read within
   the limits in edge_contracts/bundle/golden.py, run a few rows at a time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edge_contracts.bundle.golden import (
    GOLDEN_BATCH_ROWS,
    compare_golden,
    golden_batches,
    load_golden,
)
from edge_contracts.manifest import MANIFEST_FILE
from edge_server.catalogue.serving import ServingModel
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import BundleError, UpdateRejected


def _dims_agree(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or -1 in (x, y) for x, y in zip(a, b, strict=True))


def _declared_dims(raw: Any) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in raw or ())


def check_declared(kind: str, declared: Any, actual: tuple[TensorSpec, ...]) -> None:
    if declared is None:
        return
    if not isinstance(declared, list) or not all(isinstance(d, dict) for d in declared):
        raise UpdateRejected(f"manifest {kind} must be a list of {{name, dtype, shape}} objects")
    names = [str(d.get("name")) for d in declared]
    if names != [s.name for s in actual]:
        raise UpdateRejected(
            f"manifest declares {kind} {names} but the ONNX model has {[s.name for s in actual]}"
        )
    for entry, spec in zip(declared, actual, strict=True):
        dtype = entry.get("dtype")
        if dtype and dtype != spec.dtype:
            raise UpdateRejected(
                f"manifest declares {kind[:-1]} {spec.name} as {dtype}, the ONNX model has "
                f"{spec.dtype}"
            )
        if "shape" in entry and not _dims_agree(_declared_dims(entry["shape"]), spec.shape):
            raise UpdateRejected(
                f"manifest declares {kind[:-1]} {spec.name} with shape {entry['shape']}, the "
                f"ONNX model has {list(spec.shape)}"
            )


def check_compatible(new: ServingModel, active: ServingModel) -> None:
    for kind, old_specs, new_specs in (
        ("inputs", active.inputs, new.inputs),
        ("outputs", active.outputs, new.outputs),
    ):
        old_sig = [(s.name, s.dtype) for s in old_specs]
        new_sig = [(s.name, s.dtype) for s in new_specs]
        if old_sig != new_sig:
            raise UpdateRejected(
                f"{kind} change from {old_sig} (active version {active.version}) to {new_sig}; "
                'declare "breaking_change": true in the manifest if this is deliberate'
            )
        for old, fresh in zip(old_specs, new_specs, strict=True):
            if not _dims_agree(old.shape, fresh.shape):
                raise UpdateRejected(
                    f"{kind[:-1]} {old.name} changes shape from {list(old.shape)} to "
                    f'{list(fresh.shape)}; declare "breaking_change": true if deliberate'
                )


def _batch_rows(model: ServingModel) -> int:
    """Rows per session.run: small slices when every input's batch axis is dynamic; a
    model exported with a fixed batch can only run its samples whole (model_tools
    packages exactly one batch for it, model_tools/packaging.py golden_count)."""
    dynamic = all(spec.has_dynamic_batch for spec in model.inputs)
    return GOLDEN_BATCH_ROWS if dynamic else 0


def check_golden(model: ServingModel, folder: Path, description: Any) -> None:
    if description is None:
        return
    if not isinstance(description, dict) or not isinstance(description.get("path"), str):
        raise UpdateRejected("manifest 'golden' must name its samples file in 'path'")
    try:
        golden = load_golden(folder / description["path"], description)
    except BundleError as exc:
        raise UpdateRejected(str(exc)) from None  # it names the file and the problem
    # In slices, so the model's activations for all samples are never held at once.
    for start, part in golden_batches(golden, _batch_rows(model)):
        feeds = {name: np.ascontiguousarray(value) for name, value in part.inputs.items()}
        try:
            results = model.session.run(feeds)
        except Exception as exc:
            raise UpdateRejected(f"golden inputs do not run through the model: {exc}") from None
        actual = {spec.name: value for spec, value in zip(model.outputs, results, strict=True)}
        problems = compare_golden(part, actual)
        if problems:
            where = ""
            if part is not golden:  # sliced: every array has a first dimension
                where = f" (samples {start}..{start + len(next(iter(part.inputs.values()))) - 1})"
            raise UpdateRejected(
                f"golden samples do not reproduce their expected outputs{where}: "
                + "; ".join(problems)
            )


def validate_model(model: ServingModel, folder: Path, active: ServingModel | None) -> None:
    """Raise UpdateRejected with a reason a person can act on, or return."""
    document = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    check_declared("inputs", document.get("inputs"), model.inputs)
    check_declared("outputs", document.get("outputs"), model.outputs)
    if active is not None and not document.get("breaking_change", False):
        check_compatible(model, active)
    check_golden(model, folder, document.get("golden"))
