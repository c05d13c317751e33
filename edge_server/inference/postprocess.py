"""Model output -> classification: softmax probabilities, best class, top-k.

Outputs of at most ``SMALL_OUTPUT`` float32 classes (digits-sized models) are
classified in plain Python: numpy's fixed cost per call (a dozen calls here) is
then most of a tiny model's post-processing. Both paths give the same classes in
the same order (ties by ascending class id, as a stable sort gives them) and the
same scores within float32 rounding; anything unusual (NaN, infinities, other
dtypes, more classes) takes the numpy path.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from edge_contracts.manifest import Manifest

DEFAULT_TOP_K = 5
SMALL_OUTPUT = 64  # classes up to which plain Python beats numpy's per-call cost


# NamedTuples, not frozen dataclasses: several are built per request, and a frozen
# dataclass pays an object.__setattr__ per field.
class ClassScore(NamedTuple):
    class_id: int
    label: str
    score: float


class Classification(NamedTuple):
    class_id: int
    label: str
    confidence: float
    top_k: tuple[ClassScore, ...]


NO_CLASSIFICATION = Classification(-1, "", 0.0, ())
_FLOAT32 = np.dtype(np.float32)
# Packing as C floats rounds float64 values to float32, the precision numpy computes in.
_AS_FLOAT32 = [struct.Struct(f"{n}f") for n in range(SMALL_OUTPUT + 1)]


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over a 1-D float array."""
    shifted = scores.astype(np.float32, copy=False) - np.max(scores)
    exp = np.exp(shifted)
    result: np.ndarray = exp / np.sum(exp)
    return result


def first_row_scores(output: np.ndarray) -> np.ndarray:
    """Class scores of the first batch row, flattened ([N, C] -> [C]; [C] stays)."""
    if output.ndim == 0:
        return output.reshape(1)
    row = output[0] if output.ndim >= 2 else output
    return np.asarray(row).reshape(-1)


def classify(output: np.ndarray, manifest: Manifest, top_k: int) -> Classification:
    """Classification of the first row of the model's first output."""
    # [N, C], the common case, without first_row_scores' general reshaping.
    scores = output[0] if output.ndim == 2 else first_row_scores(output)
    if scores.dtype == _FLOAT32 and 0 < scores.size <= SMALL_OUTPUT:
        fast = _classify_small(scores.tolist(), manifest, top_k)
        if fast is not None:
            return fast
    return classify_numpy(scores, manifest, top_k)


def classify_numpy(scores: np.ndarray, manifest: Manifest, top_k: int) -> Classification:
    """The numpy path: any size and dtype, O(C) selection of the top k."""
    if scores.dtype.kind not in "fiub" or scores.size == 0:
        return NO_CLASSIFICATION
    if manifest.output_kind == "probabilities":
        probabilities = scores.astype(np.float32, copy=False)
    else:
        probabilities = softmax(scores)
    k = min(top_k or DEFAULT_TOP_K, probabilities.size)
    negated = -probabilities
    # Everything scoring at least the k-th best, in class order (argpartition alone
    # would pick among tied classes arbitrarily); NaN sorts last, as in argsort.
    kth = np.partition(negated, k - 1)[k - 1]
    candidates = np.flatnonzero(~(negated > kth))
    best = candidates[np.argsort(negated[candidates], kind="stable")[:k]]
    entries = tuple(
        ClassScore(int(i), manifest.label_for(int(i)), float(probabilities[i])) for i in best
    )
    top = entries[0]
    return Classification(top.class_id, top.label, top.score, entries)


def _classify_small(values: list[float], manifest: Manifest, top_k: int) -> Classification | None:
    """Plain-Python classify of a few float32 scores; None when numpy must decide."""
    count = len(values)
    probabilities: Sequence[float]
    if manifest.output_kind == "probabilities":
        probabilities = values
        if math.isnan(sum(values)):  # NaN (or inf - inf): sorting would be undefined
            return None
    else:
        peak = max(values)
        exps = [math.exp(v - peak) for v in values]
        total = sum(exps)
        if not 1.0 <= total < math.inf:  # NaN or infinite scores
            return None
        as_float32 = _AS_FLOAT32[count]
        probabilities = as_float32.unpack(as_float32.pack(*[e / total for e in exps]))
    k = min(top_k or DEFAULT_TOP_K, count)
    # sorted() is stable, also in reverse: tied classes keep ascending ids.
    best = sorted(range(count), key=probabilities.__getitem__, reverse=True)[:k]
    labels = manifest.labels
    named = len(labels)
    entries = tuple([ClassScore(i, labels[i] if i < named else "", probabilities[i]) for i in best])
    top = entries[0]
    return Classification(top.class_id, top.label, top.score, entries)
