"""ONNX Runtime sessions for the tools: clear errors, fixed threads, batched runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from model_tools.errors import ToolError, require_file

__all__ = ["open_session", "run_batched"]


def open_session(
    path: Path, threads: int | None = None, optimize: bool = True
) -> ort.InferenceSession:
    """A CPU session; ``threads`` fixes intra-op threads (None = ORT's default)."""
    require_file(path, "ONNX model")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ToolError(f"ONNX Runtime cannot load {path}: {first}") from None


def run_batched(
    session: ort.InferenceSession,
    x: np.ndarray,
    batch_size: int = 32,
    desc: str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """First output of the model over ``x`` in batches, concatenated."""
    if batch_size < 1:
        raise ToolError(f"batch size must be at least 1, got {batch_size}")
    name = session.get_inputs()[0].name
    outputs: list[np.ndarray] = []
    starts = range(0, len(x), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        try:
            (out, *_) = session.run(None, {name: x[start : start + batch_size]})
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ToolError(f"inference failed: {first}") from None
        outputs.append(np.asarray(out))
    return np.concatenate(outputs)
