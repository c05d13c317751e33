"""Top-1/top-5 accuracy on a labelled dataset, the FP32-vs-INT8 comparison gate, and the
drift reference (class mix, confidence histogram, low-margin share) that ``--record``
stores beside the accuracy for the gateway's drift monitor (docs/drift.md)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_contracts.drift_reference import (
    REFERENCE_KEY,
    DriftReference,
    reference_from_probabilities,
)
from edge_contracts.manifest import parse_manifest
from model_tools.datasets import LabelledData, load_labelled_data
from model_tools.errors import ToolError
from model_tools.manifest_io import find_manifest, manifest_path_for, write_json_atomic
from model_tools.onnx_model import graph_signature, load_onnx
from model_tools.sessions import open_session, run_batched

__all__ = [
    "EvaluationReport",
    "ModelScore",
    "evaluate_models",
    "load_dataset_for",
    "probabilities_of",
    "record_evaluation",
    "topk_accuracy",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelScore:
    model: str
    top1: float
    top5: float
    samples: int


@dataclass(frozen=True)
class EvaluationReport:
    """Scores per model; with two models, the second is compared against the first."""

    dataset: str
    samples: int
    scores: tuple[ModelScore, ...]
    agreement: float | None = None
    max_drop: float | None = None
    # Per model, the predictions' drift reference (what --record stores).
    references: tuple[DriftReference, ...] = ()

    @property
    def drop_points(self) -> float | None:
        """Top-1 accuracy lost by the second model, in percentage points."""
        if len(self.scores) < 2:
            return None
        return (self.scores[0].top1 - self.scores[1].top1) * 100.0

    @property
    def delta_points(self) -> float | None:
        """Candidate minus reference top-1, in percentage points."""
        if len(self.scores) < 2:
            return None
        return (self.scores[1].top1 - self.scores[0].top1) * 100.0

    @property
    def passed(self) -> bool:
        drop = self.drop_points
        return self.max_drop is None or drop is None or drop <= self.max_drop + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "samples": self.samples,
            "scores": [asdict(s) for s in self.scores],
            "delta_top1_points": self.delta_points,
            "agreement": self.agreement,
            "max_drop": self.max_drop,
            "passed": self.passed,
        }


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest scores."""
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ToolError(f"model output has shape {list(scores.shape)}, expected [N, classes]")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def probabilities_of(scores: np.ndarray, output_kind: str) -> np.ndarray:
    """Class probabilities as the gateway computes them: softmax of logits, or as is."""
    if output_kind == "probabilities":
        return scores.astype(np.float64)
    shifted = scores.astype(np.float64) - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _output_kind(model_path: Path, manifest_path: Path | None) -> str:
    manifest = find_manifest(model_path, manifest_path)
    return parse_manifest(manifest).output_kind if manifest else "logits"


def load_dataset_for(
    model_path: Path, dataset: Path, manifest_path: Path | None = None, limit: int | None = None
) -> LabelledData:
    """The dataset as model inputs, preprocessed with the model's manifest."""
    manifest = find_manifest(model_path, manifest_path)
    parsed = parse_manifest(manifest) if manifest else None
    inputs, _ = graph_signature(load_onnx(model_path, load_weights=False))
    data = load_labelled_data(
        dataset,
        parsed.preprocessing if parsed else None,
        inputs[0].shape,
        parsed.labels if parsed else (),
        limit,
    )
    if len(data.y) == 0:
        raise ToolError(f"dataset {dataset} is empty")
    return data


def evaluate_models(
    models: Sequence[Path],
    dataset: Path,
    *,
    manifest_path: Path | None = None,
    batch_size: int = 32,
    max_drop: float | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> EvaluationReport:
    """Score one model, or compare a candidate (second) against a reference (first)."""
    if not 1 <= len(models) <= 2:
        raise ToolError("evaluate takes one model, or two (reference and candidate)")
    if max_drop is not None and len(models) != 2:
        raise ToolError("--max-drop needs two models: the reference and the candidate")
    data = load_dataset_for(models[0], dataset, manifest_path, limit)
    predictions: list[np.ndarray] = []
    scores: list[ModelScore] = []
    references: list[DriftReference] = []
    for path in models:
        session = open_session(path)
        logits = run_batched(
            session, data.x, batch_size, desc=f"evaluate {path.name}", progress=progress
        )
        if logits.ndim != 2 or logits.shape[1] < int(data.y.max()) + 1:
            raise ToolError(
                f"{path}: output shape {list(logits.shape)} does not cover "
                f"{int(data.y.max()) + 1} classes"
            )
        top1 = topk_accuracy(logits, data.y, 1)
        scores.append(ModelScore(str(path), top1, topk_accuracy(logits, data.y, 5), len(data.y)))
        predictions.append(np.argmax(logits, axis=1))
        kind = _output_kind(path, manifest_path if path == models[0] else None)
        references.append(
            reference_from_probabilities(
                probabilities_of(logits, kind).tolist(),
                dataset=Path(dataset).name,
                dataset_sha256=_file_digest(Path(dataset)),
            )
        )
    agreement = None
    if len(predictions) == 2:
        agreement = float(np.mean(predictions[0] == predictions[1]))
    return EvaluationReport(
        str(dataset), len(data.y), tuple(scores), agreement, max_drop, tuple(references)
    )


def _file_digest(path: Path) -> str:
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return ""


def record_evaluation(model_path: Path, report: EvaluationReport, index: int = 0) -> Path:
    """Store one model's score in its manifest's ``evaluation`` block and its predictions'
    drift reference in the ``reference`` block."""
    manifest_file = manifest_path_for(model_path)
    document = find_manifest(model_path)
    if document is None:
        raise ToolError(f"{model_path} has no manifest to record the evaluation in")
    score = report.scores[index]
    evaluation: dict[str, Any] = {
        "dataset": Path(report.dataset).name,
        "dataset_sha256": _file_digest(Path(report.dataset)),
        "samples": report.samples,
        "top1": round(score.top1, 6),
        "top5": round(score.top5, 6),
    }
    if index == 1 and report.agreement is not None and report.drop_points is not None:
        evaluation["reference_top1"] = round(report.scores[0].top1, 6)
        evaluation["agreement"] = round(report.agreement, 6)
    document["evaluation"] = evaluation
    if index < len(report.references):
        document[REFERENCE_KEY] = report.references[index].to_dict()
    write_json_atomic(manifest_file, document)
    return manifest_file
