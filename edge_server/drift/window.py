"""One model version's rolling window of predictions, compared with its reference.

The window holds the last ``size`` predictions (count-based: a quiet gateway keeps
its evidence, a busy one reacts within ``size`` requests) as running counts per
class, per confidence decile and of low-margin answers, plus a ring of the entries
to take back out when they leave the window: O(1) per prediction and ``size`` small
tuples of memory. Plain Python, called on the event loop only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge_contracts.distribution_shift import jensen_shannon_distance
from edge_contracts.drift_reference import DriftReference, confidence_bin

__all__ = ["DriftSnapshot", "DriftWindow", "drift_score"]


@dataclass(frozen=True)
class DriftSnapshot:
    """What the monitor knows about one model version now (also sent in feedback batches)."""

    model: str
    version: str
    score: float | None  # max(class_distance, confidence_distance); None: no evidence yet
    class_distance: float | None
    confidence_distance: float | None
    low_margin_share: float
    reference_low_margin_share: float
    window: int  # predictions in the window now
    drifting: bool

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def drift_score(class_distance: float | None, confidence_distance: float | None) -> float | None:
    """The larger of the two distances: either a new class mix or a loss of confidence is
    drift on its own, and a mean would halve a shift that shows in only one of them."""
    known = [d for d in (class_distance, confidence_distance) if d is not None]
    return max(known) if known else None


class DriftWindow:
    def __init__(self, model: str, version: str, reference: DriftReference, size: int) -> None:
        self.model = model
        self.version = version
        self.reference = reference
        self.size = size
        # One extra bin for class ids the reference does not know (its count is 0 there).
        self._reference_classes = [*reference.class_counts, 0]
        self._classes = [0] * len(self._reference_classes)
        self._confidence = [0] * len(reference.confidence_histogram)
        self._low_margin = 0
        self._entries: deque[tuple[int, int, bool]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, class_id: int, confidence: float, margin: float) -> None:
        known = len(self._reference_classes) - 1
        entry = (
            class_id if 0 <= class_id < known else known,
            confidence_bin(confidence),
            margin < self.reference.low_margin_threshold,
        )
        self._entries.append(entry)
        self._count(entry, 1)
        if len(self._entries) > self.size:
            self._count(self._entries.popleft(), -1)

    def _count(self, entry: tuple[int, int, bool], step: int) -> None:
        class_index, bin_index, low = entry
        self._classes[class_index] += step
        self._confidence[bin_index] += step
        self._low_margin += step if low else 0

    def snapshot(self, threshold: float, min_samples: int) -> DriftSnapshot:
        """The distances now; drifting only above ``threshold`` with enough evidence."""
        count = len(self._entries)
        class_distance = jensen_shannon_distance(self._classes, self._reference_classes)
        confidence_distance = jensen_shannon_distance(
            self._confidence, self.reference.confidence_histogram
        )
        score = drift_score(class_distance, confidence_distance)
        return DriftSnapshot(
            self.model,
            self.version,
            score,
            class_distance,
            confidence_distance,
            self._low_margin / count if count else 0.0,
            self.reference.low_margin_share,
            count,
            score is not None and count >= min_samples and score > threshold,
        )
