"""Prediction results summarized in memory, on the request path, in O(1) per request.

Per model, version and time bucket: counts per predicted class, a top-1 confidence
histogram (10 bins), a latency histogram (for p50/p99) with count, sum and max, and
success/error counts. Hard examples are kept only when the model's policy allows
them, and then only images under the byte cap, picked by one of the policy's triggers
(low confidence, low margin, shadow disagreement, a drift burst: any input while the
drift monitor marks the version as drifting) and within the hourly rate; pending
examples are bounded in number and bytes. Nothing here touches the disk: ``drain``
hands closed buckets, examples and the drift monitor's snapshots to the outbox writer.
"""

from __future__ import annotations

import bisect
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_contracts.drift_reference import CONFIDENCE_BINS, confidence_bin
from edge_contracts.feedback_policy import FeedbackPolicy, policy_from_manifest
from edge_contracts.manifest import Manifest
from edge_server.drift.monitor import DriftMonitor
from edge_server.drift.window import DriftSnapshot

__all__ = ["Bucket", "FeedbackRecorder", "HardExample", "PendingBatch", "sniff_image_type"]

# Upper bounds in microseconds; the last bin is open-ended.
LATENCY_BOUNDS_US = (
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
)


def sniff_image_type(data: bytes) -> str:
    """Media type of an encoded image, or "" when it is not one we export."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"BM"):
        return "image/bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


@dataclass
class Bucket:
    model: str
    version: str
    start: float
    seconds: int
    classes: dict[int, list[Any]] = field(default_factory=dict)  # id -> [label, count]
    confidence: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    latency_bins: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_US) + 1))
    latency_count: int = 0
    latency_sum_us: int = 0
    latency_max_us: int = 0
    successes: int = 0
    errors: int = 0

    def add(self, class_id: int, label: str, confidence: float, latency_us: int) -> None:
        entry = self.classes.get(class_id)
        if entry is None:
            self.classes[class_id] = [label, 1]
        else:
            entry[1] += 1
        self.confidence[confidence_bin(confidence)] += 1
        self.latency_bins[bisect.bisect_left(LATENCY_BOUNDS_US, latency_us)] += 1
        self.latency_count += 1
        self.latency_sum_us += latency_us
        self.latency_max_us = max(self.latency_max_us, latency_us)
        self.successes += 1

    def quantile_us(self, q: float) -> int:
        """Upper bound of the latency bin holding the q-quantile (max for the last bin)."""
        if not self.latency_count:
            return 0
        rank = q * self.latency_count
        seen = 0
        for index, count in enumerate(self.latency_bins):
            seen += count
            if seen >= rank and count:
                if index < len(LATENCY_BOUNDS_US):
                    return min(LATENCY_BOUNDS_US[index], self.latency_max_us)
                return self.latency_max_us
        return self.latency_max_us

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "bucket_start": self.start,
            "bucket_seconds": self.seconds,
            "classes": [
                [cid, label, count] for cid, (label, count) in sorted(self.classes.items())
            ],
            "confidence_histogram": list(self.confidence),
            "latency": {
                "count": self.latency_count,
                "sum_us": self.latency_sum_us,
                "max_us": self.latency_max_us,
                "p50_us": self.quantile_us(0.5),
                "p99_us": self.quantile_us(0.99),
            },
            "successes": self.successes,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class HardExample:
    model: str
    version: str
    class_id: int
    label: str
    confidence: float
    reason: str  # low_confidence, low_margin, shadow_disagreement or drift_burst
    data: bytes = field(repr=False)
    content_type: str
    captured_at: float


@dataclass(frozen=True)
class PendingBatch:
    batch_id: str
    created_at: float
    buckets: tuple[Bucket, ...]
    examples: tuple[HardExample, ...]
    drift: tuple[DriftSnapshot, ...] = ()


class FeedbackRecorder:
    """Owned by the event loop: call only from it (no locks needed)."""

    def __init__(
        self,
        bucket_seconds: int = 60,
        max_pending_examples: int = 64,
        max_pending_example_bytes: int = 8 << 20,
        clock: Callable[[], float] = time.time,
        drift: DriftMonitor | None = None,
    ) -> None:
        self._drift = drift
        self.bucket_seconds = max(1, int(bucket_seconds))
        self._max_examples = max_pending_examples
        self._max_example_bytes = max_pending_example_bytes
        self._clock = clock
        self._buckets: dict[tuple[str, str, float], Bucket] = {}
        self._examples: list[HardExample] = []
        self._example_bytes = 0
        self._policies: dict[tuple[str, str], FeedbackPolicy] = {}
        self._recent: dict[str, deque[float]] = {}
        self.examples_skipped = 0  # over a cap or the rate

    def policy(self, name: str, version: str, manifest: Manifest) -> FeedbackPolicy:
        key = (name, version)
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = policy_from_manifest(manifest)
        return policy

    def _bucket(self, name: str, version: str, now: float) -> Bucket:
        start = now - (now % self.bucket_seconds)
        key = (name, version, start)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(name, version, start, self.bucket_seconds)
        return bucket

    def record(
        self,
        name: str,
        version: str,
        manifest: Manifest,
        class_id: int,
        label: str,
        confidence: float,
        latency_us: int,
        image: bytes | None,
        margin: float = 1.0,
    ) -> None:
        now = self._clock()
        self._bucket(name, version, now).add(class_id, label, confidence, latency_us)
        if image is None:
            return
        policy = self.policy(name, version, manifest)
        if not policy.allows_examples:
            return
        reason = self._trigger(policy, name, version, confidence, margin)
        if reason:
            self._keep_example(
                policy, name, version, class_id, label, confidence, image, now, reason
            )

    def _trigger(
        self, policy: FeedbackPolicy, name: str, version: str, confidence: float, margin: float
    ) -> str:
        """The first of the policy's triggers this prediction pulls, or ""."""
        if policy.triggered("low_confidence") and confidence < policy.low_confidence:
            return "low_confidence"
        if policy.triggered("low_margin") and margin < policy.low_margin:
            return "low_margin"
        drifting = self._drift is not None and self._drift.is_drifting(name, version)
        if policy.triggered("drift_burst") and drifting:
            return "drift_burst"
        return ""

    def record_disagreement(
        self,
        name: str,
        version: str,
        manifest: Manifest,
        class_id: int,
        label: str,
        image: bytes,
    ) -> None:
        """A shadow version disagreed with the active one on this input (a hard example
        when the model's privacy policy allows examples; never otherwise)."""
        policy = self.policy(name, version, manifest)
        if policy.triggered("shadow_disagreement"):
            now = self._clock()
            self._keep_example(
                policy, name, version, class_id, label, 0.0, image, now, "shadow_disagreement"
            )

    def record_error(self, name: str, version: str) -> None:
        self._bucket(name, version, self._clock()).errors += 1

    def _keep_example(
        self,
        policy: FeedbackPolicy,
        name: str,
        version: str,
        class_id: int,
        label: str,
        confidence: float,
        image: bytes,
        now: float,
        reason: str,
    ) -> None:
        recent = self._recent.setdefault(name, deque())
        while recent and recent[0] <= now - 3600:
            recent.popleft()
        content_type = sniff_image_type(image[:16])
        if (
            not content_type
            or len(image) > policy.max_example_bytes
            or len(recent) >= policy.max_examples_per_hour
            or len(self._examples) >= self._max_examples
            or self._example_bytes + len(image) > self._max_example_bytes
        ):
            self.examples_skipped += 1
            return
        recent.append(now)
        self._examples.append(
            HardExample(
                name,
                version,
                class_id,
                label,
                confidence,
                reason,
                bytes(image),
                content_type,
                now,
            )
        )
        self._example_bytes += len(image)

    def has_pending(self) -> bool:
        return bool(self._buckets or self._examples)

    def drain(self, force: bool = False) -> PendingBatch | None:
        """Closed buckets (all of them with ``force``) and pending examples, or None."""
        now = self._clock()
        closed = [key for key, b in self._buckets.items() if force or b.start + b.seconds <= now]
        if not closed and not self._examples:
            return None
        buckets = tuple(self._buckets.pop(key) for key in sorted(closed))
        examples = tuple(self._examples)
        self._examples.clear()
        self._example_bytes = 0
        # The drift as of now travels with the closed buckets (none when nothing closed).
        drift = tuple(self._drift.snapshots()) if self._drift is not None and buckets else ()
        return PendingBatch(uuid.uuid4().hex, now, buckets, examples, drift)
