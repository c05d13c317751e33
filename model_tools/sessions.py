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


def _padded(chunk: np.ndarray, size: int | None) -> np.ndarray:
    """``chunk`` filled up with zeros to ``size`` rows (a fixed batch axis takes no fewer)."""
    if size is None or len(chunk) == size:
        return chunk
    filler = np.zeros((size - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
    return np.concatenate([chunk, filler])


def run_batched(
    session: ort.InferenceSession,
    x: np.ndarray,
    batch_size: int = 32,
    desc: str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """First output of the model over ``x`` in batches, concatenated.

    A model exported with a fixed batch axis runs in batches of exactly that size,
    the last one padded and its padding dropped from the output.
    """
    if batch_size < 1:
        raise ToolError(f"batch size must be at least 1, got {batch_size}")
    spec = session.get_inputs()[0]
    fixed = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) else None
    step = fixed or batch_size
    outputs: list[np.ndarray] = []
    starts = range(0, len(x), step)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        chunk = x[start : start + step]
        try:
            (out, *_) = session.run(None, {spec.name: _padded(chunk, fixed)})
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ToolError(f"inference failed: {first}") from None
        outputs.append(np.asarray(out)[: len(chunk)])
    return np.concatenate(outputs)
