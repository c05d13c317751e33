"""Shadow evidence: what a candidate version did on live requests beside the active one.

The gateway counts it (edge_server/inference/shadow.py), reports it over ModelService
(push mode) and ReportStatus (pull mode), and the orchestrator's evidence gates judge it
(cloud_orchestrator/rollouts/gates.py). Everything is a count, so evidence adds up across
gateways (a wave's aggregate) and subtracts (what happened since a baseline reading).

Histograms have fixed bins, so memory per candidate is constant however long it shadows:

- top-1 confidence: 10 bins, bin i counts confidences in [i/10, (i+1)/10), the last one
  includes 1.0 (the same deciles as the feedback aggregates);
- latency (inference time of one run): ``LATENCY_BUCKETS`` log-spaced buckets, bucket 0
  counts runs under 10 us and bucket i >= 1 runs in [10 us * 1.1^(i-1), 10 us * 1.1^i),
  the last bucket everything above; a quantile read from them is within 5% of the true
  value, finer than the noise of a p95 on a few hundred requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_contracts.proto.edge.v1 import model_pb2

__all__ = [
    "CONFIDENCE_BINS",
    "LATENCY_BUCKETS",
    "ShadowEvidence",
    "confidence_bin",
    "evidence_from_proto",
    "evidence_to_proto",
    "latency_bucket",
    "latency_quantile_us",
]

CONFIDENCE_BINS = 10
LATENCY_BUCKETS = 160  # the last bucket starts at about 37 s
_BASE_US = 10.0
_GROWTH = 1.1


def confidence_bin(confidence: float) -> int:
    if not confidence > 0:  # also NaN
        return 0
    return min(CONFIDENCE_BINS - 1, int(confidence * CONFIDENCE_BINS))


def latency_bucket(seconds: float) -> int:
    micros = seconds * 1e6
    if not micros >= _BASE_US:
        return 0
    index = int(math.log(micros / _BASE_US) / math.log(_GROWTH)) + 1
    return min(LATENCY_BUCKETS - 1, index)


def _bucket_value_us(index: int) -> float:
    """A bucket's representative latency: the geometric middle of its bounds."""
    if index == 0:
        return _BASE_US / 2
    return float(_BASE_US * _GROWTH ** (index - 0.5))


def latency_quantile_us(counts: Sequence[int], quantile: float) -> float | None:
    """The ``quantile`` (0..1) of a latency histogram in microseconds; None when empty."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(1, math.ceil(quantile * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return _bucket_value_us(index)
    return _bucket_value_us(len(counts) - 1)


def _zeros(size: int) -> tuple[int, ...]:
    return (0,) * size


def _add(first: Sequence[int], second: Sequence[int], sign: int, size: int) -> tuple[int, ...]:
    a = list(first) + [0] * (size - len(first))
    b = list(second) + [0] * (size - len(second))
    return tuple(x + sign * y for x, y in zip(a[:size], b[:size], strict=True))


@dataclass(frozen=True)
class ShadowEvidence:
    """Counts over the requests a candidate shadowed. ``compared`` counts requests the
    candidate answered (agreeing or not); ``candidate_errors`` the ones it failed on.
    Only requests the active version answered are shadowed, so ``active_errors`` stays 0
    on a gateway; it is here so a rule "no worse than the active version" reads as one."""

    compared: int = 0
    agreed: int = 0
    candidate_errors: int = 0
    active_errors: int = 0
    candidate_confidence: tuple[int, ...] = field(default=_zeros(CONFIDENCE_BINS))
    active_confidence: tuple[int, ...] = field(default=_zeros(CONFIDENCE_BINS))
    candidate_latency: tuple[int, ...] = field(default=_zeros(LATENCY_BUCKETS))
    active_latency: tuple[int, ...] = field(default=_zeros(LATENCY_BUCKETS))

    @property
    def requests(self) -> int:
        """Shadowed requests: answered by the candidate or failed on it."""
        return self.compared + self.candidate_errors

    def _combine(self, other: ShadowEvidence, sign: int) -> ShadowEvidence:
        return ShadowEvidence(
            self.compared + sign * other.compared,
            self.agreed + sign * other.agreed,
            self.candidate_errors + sign * other.candidate_errors,
            self.active_errors + sign * other.active_errors,
            _add(self.candidate_confidence, other.candidate_confidence, sign, CONFIDENCE_BINS),
            _add(self.active_confidence, other.active_confidence, sign, CONFIDENCE_BINS),
            _add(self.candidate_latency, other.candidate_latency, sign, LATENCY_BUCKETS),
            _add(self.active_latency, other.active_latency, sign, LATENCY_BUCKETS),
        )

    def plus(self, other: ShadowEvidence) -> ShadowEvidence:
        return self._combine(other, 1)

    def since(self, baseline: ShadowEvidence | None) -> ShadowEvidence:
        """What was counted after ``baseline`` was read. A gateway that restarted in
        between counts from zero again (some count went down): then all of it is new."""
        if baseline is None:
            return self
        delta = self._combine(baseline, -1)
        counts = (delta.compared, delta.agreed, delta.candidate_errors, delta.active_errors)
        histograms = (
            delta.candidate_confidence
            + delta.active_confidence
            + delta.candidate_latency
            + delta.active_latency
        )
        if min(counts) < 0 or min(histograms) < 0:
            return self
        return delta

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "agreed": self.agreed,
            "candidate_errors": self.candidate_errors,
            "active_errors": self.active_errors,
            "candidate_confidence": list(self.candidate_confidence),
            "active_confidence": list(self.active_confidence),
            "candidate_latency": list(self.candidate_latency),
            "active_latency": list(self.active_latency),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShadowEvidence:
        return cls(
            int(data.get("compared", 0)),
            int(data.get("agreed", 0)),
            int(data.get("candidate_errors", 0)),
            int(data.get("active_errors", 0)),
            _add(data.get("candidate_confidence", ()), (), 1, CONFIDENCE_BINS),
            _add(data.get("active_confidence", ()), (), 1, CONFIDENCE_BINS),
            _add(data.get("candidate_latency", ()), (), 1, LATENCY_BUCKETS),
            _add(data.get("active_latency", ()), (), 1, LATENCY_BUCKETS),
        )


def evidence_to_proto(evidence: ShadowEvidence) -> model_pb2.ShadowEvidence:
    return model_pb2.ShadowEvidence(
        compared=evidence.compared,
        agreed=evidence.agreed,
        candidate_errors=evidence.candidate_errors,
        active_errors=evidence.active_errors,
        candidate_confidence=evidence.candidate_confidence,
        active_confidence=evidence.active_confidence,
        candidate_latency=evidence.candidate_latency,
        active_latency=evidence.active_latency,
    )


def evidence_from_proto(message: model_pb2.ShadowEvidence) -> ShadowEvidence:
    """Histograms of another length (a gateway of another release) are cut or padded."""
    return ShadowEvidence(
        message.compared,
        message.agreed,
        message.candidate_errors,
        message.active_errors,
        _add(message.candidate_confidence, (), 1, CONFIDENCE_BINS),
        _add(message.active_confidence, (), 1, CONFIDENCE_BINS),
        _add(message.candidate_latency, (), 1, LATENCY_BUCKETS),
        _add(message.active_latency, (), 1, LATENCY_BUCKETS),
    )
