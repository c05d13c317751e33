"""The drift reference: what a model's predictions looked like on held-out data.

``model-tools evaluate --record`` writes it into the manifest's ``reference`` block and
``model-tools package`` carries it into the bundle, where the signature over
``manifest.json`` covers it. The gateway's drift monitor compares live traffic with it
using the same statistic as the rollout evidence gates
(``edge_contracts.distribution_shift``):

```json
"reference": {"samples": 360, "class_counts": [36, 35, 37, 36, 36, 37, 36, 36, 35, 36],
              "confidence_histogram": [0, 0, 0, 0, 1, 2, 3, 4, 10, 340],
              "low_margin_threshold": 0.2, "low_margin_share": 0.02,
              "dataset": "digits-test.npz", "dataset_sha256": "<64 hex>"}
```

A signature says who built a bundle, not that the numbers are sound, so the block is
read as untrusted data: every field is checked for type, range and size (at most
``MAX_REFERENCE_CLASSES`` classes, counts that add up to ``samples``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge_contracts.errors import ManifestError
from edge_contracts.manifest import Manifest

__all__ = [
    "CONFIDENCE_BINS",
    "DEFAULT_LOW_MARGIN",
    "MAX_REFERENCE_CLASSES",
    "MAX_REFERENCE_SAMPLES",
    "REFERENCE_KEY",
    "DriftReference",
    "confidence_bin",
    "parse_reference",
    "reference_from_manifest",
    "reference_from_probabilities",
]

REFERENCE_KEY = "reference"
CONFIDENCE_BINS = 10  # top-1 confidence deciles, as in the feedback aggregates
DEFAULT_LOW_MARGIN = 0.2  # top-1 minus top-2 probability below this is a low-margin answer
MAX_REFERENCE_CLASSES = 4096
MAX_REFERENCE_SAMPLES = 1_000_000_000


def confidence_bin(confidence: float) -> int:
    """Decile of a top-1 confidence: [i/10, (i+1)/10), the last bin includes 1.0."""
    if not confidence > 0:  # also NaN
        return 0
    return min(CONFIDENCE_BINS - 1, int(confidence * CONFIDENCE_BINS))


@dataclass(frozen=True)
class DriftReference:
    samples: int
    class_counts: tuple[int, ...]  # index = class id
    confidence_histogram: tuple[int, ...]  # CONFIDENCE_BINS entries
    low_margin_threshold: float
    low_margin_share: float
    dataset: str = ""
    dataset_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "samples": self.samples,
            "class_counts": list(self.class_counts),
            "confidence_histogram": list(self.confidence_histogram),
            "low_margin_threshold": self.low_margin_threshold,
            "low_margin_share": self.low_margin_share,
        }
        if self.dataset:
            data["dataset"] = self.dataset
        if self.dataset_sha256:
            data["dataset_sha256"] = self.dataset_sha256
        return data


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ManifestError(f"reference.{what} must be a non-negative integer, got {value!r}")
    return value


def _counts(raw: Any, what: str, samples: int, length: tuple[int, int]) -> tuple[int, ...]:
    low, high = length
    if not isinstance(raw, list) or not low <= len(raw) <= high:
        size = f"{low}" if low == high else f"{low}..{high}"
        raise ManifestError(f"reference.{what} must be a list of {size} counts")
    counts = tuple(_count(v, f"{what} entry") for v in raw)
    if sum(counts) != samples:
        raise ManifestError(
            f"reference.{what} adds up to {sum(counts)}, but reference.samples is {samples}"
        )
    return counts


def _share(raw: Any, what: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not low <= raw <= high:
        raise ManifestError(f"reference.{what} must be a number in [{low:g}, {high:g}]")
    return float(raw)


def parse_reference(raw: Any) -> DriftReference:
    """Validate a ``reference`` block; raises ManifestError naming the field at fault."""
    if not isinstance(raw, dict):
        raise ManifestError("'reference' must be an object")
    samples = _count(raw.get("samples"), "samples")
    if not 1 <= samples <= MAX_REFERENCE_SAMPLES:
        raise ManifestError(f"reference.samples must be 1..{MAX_REFERENCE_SAMPLES}")
    classes = _counts(raw.get("class_counts"), "class_counts", samples, (1, MAX_REFERENCE_CLASSES))
    confidence = _counts(
        raw.get("confidence_histogram"),
        "confidence_histogram",
        samples,
        (CONFIDENCE_BINS, CONFIDENCE_BINS),
    )
    threshold = _share(
        raw.get("low_margin_threshold", DEFAULT_LOW_MARGIN), "low_margin_threshold", 0.0, 1.0
    )
    share = _share(raw.get("low_margin_share"), "low_margin_share", 0.0, 1.0)
    dataset, digest = raw.get("dataset", ""), raw.get("dataset_sha256", "")
    if not isinstance(dataset, str) or len(dataset) > 256:
        raise ManifestError("reference.dataset must be a string of at most 256 characters")
    if not isinstance(digest, str) or len(digest) > 64:
        raise ManifestError("reference.dataset_sha256 must be a hex digest")
    return DriftReference(samples, classes, confidence, threshold, share, dataset, digest)


def reference_from_manifest(manifest: Manifest) -> DriftReference | None:
    """The manifest's reference, None when it has none; ManifestError when it is invalid."""
    raw = manifest.extra.get(REFERENCE_KEY)
    return None if raw is None else parse_reference(raw)


def reference_from_probabilities(
    rows: Sequence[Sequence[float]],
    low_margin_threshold: float = DEFAULT_LOW_MARGIN,
    dataset: str = "",
    dataset_sha256: str = "",
) -> DriftReference:
    """The reference of a model's class probabilities on held-out data (one row per sample)."""
    if not rows:
        raise ManifestError("a drift reference needs at least one prediction")
    width = len(rows[0])
    if not 1 <= width <= MAX_REFERENCE_CLASSES:
        raise ManifestError(f"a drift reference covers 1..{MAX_REFERENCE_CLASSES} classes")
    classes = [0] * width
    confidence = [0] * CONFIDENCE_BINS
    low_margin = 0
    for row in rows:
        top1, top2, best = _top_two(row)
        classes[best] += 1
        confidence[confidence_bin(top1)] += 1
        low_margin += top1 - top2 < low_margin_threshold
    return DriftReference(
        len(rows),
        tuple(classes),
        tuple(confidence),
        low_margin_threshold,
        round(low_margin / len(rows), 6),
        dataset,
        dataset_sha256,
    )


def _top_two(row: Sequence[float]) -> tuple[float, float, int]:
    best, top1, top2 = 0, -math.inf, -math.inf
    for index, value in enumerate(row):
        if value > top1:
            best, top1, top2 = index, value, top1
        elif value > top2:
            top2 = value
    return top1, (top2 if len(row) > 1 else 0.0), best
