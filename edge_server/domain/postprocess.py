"""Model output -> classification: softmax probabilities, best class, top-k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_server.domain.manifest import Manifest

DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class ClassScore:
    class_id: int
    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    class_id: int
    label: str
    confidence: float
    top_k: tuple[ClassScore, ...]


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
    scores = first_row_scores(output)
    if scores.dtype.kind not in "fiub" or scores.size == 0:
        return Classification(-1, "", 0.0, ())
    if manifest.output_kind == "probabilities":
        probabilities = scores.astype(np.float32, copy=False)
    else:
        probabilities = softmax(scores)
    k = min(top_k or DEFAULT_TOP_K, probabilities.size)
    # argpartition is O(C); only the k winners get sorted.
    best = np.argpartition(-probabilities, k - 1)[:k]
    best = best[np.argsort(-probabilities[best], kind="stable")]
    entries = tuple(
        ClassScore(int(i), manifest.label_for(int(i)), float(probabilities[i])) for i in best
    )
    top = entries[0]
    return Classification(top.class_id, top.label, top.score, entries)
