"""The Feedback page's data: per model version over a time range, predictions per class
over time, the top-1 confidence histogram, latency p50/p99 and the error rate, from the
aggregates gateways upload (feedback/store.py); hard examples when the version's
manifest allows collecting them.

Gateways send latency percentiles per bucket, not raw samples: the range's p50 and p99
are the bucket percentiles weighted by each bucket's request count, an estimate that is
exact when one bucket covers the range.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from cloud_orchestrator.errors import InvalidRequest, NotFound
from cloud_orchestrator.registry.store import Registry, VersionInfo
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import FeedbackAggregate, HardExampleRow

__all__ = ["FeedbackQuery", "feedback_view", "hard_example", "hard_examples_allowed"]

MAX_POINTS = 60  # time buckets drawn per chart
MAX_RANGE = 90 * 86400.0
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})


@dataclass(frozen=True)
class FeedbackQuery:
    model: str
    versions: tuple[str, ...]  # one or two to compare; empty: the two newest
    since: float
    until: float

    def check(self) -> None:
        if self.until <= self.since:
            raise InvalidRequest("until must be after since")
        if self.until - self.since > MAX_RANGE:
            raise InvalidRequest("the time range may span 90 days at most")
        if len(self.versions) > 2:
            raise InvalidRequest("compare at most two versions at once")


def hard_examples_allowed(info: VersionInfo) -> bool:
    """The manifest's feedback policy, as the gateway applies it before sending any."""
    policy = info.manifest.get("feedback")
    return isinstance(policy, dict) and policy.get("policy") == "hard_examples"


def _weighted_percentile(pairs: Sequence[tuple[int, int]], share: float) -> int:
    """``pairs`` of (value, weight): the value under which ``share`` of the weight lies."""
    total = sum(w for _, w in pairs)
    if not total:
        return 0
    seen = 0
    for value, weight in sorted(pairs):
        seen += weight
        if seen >= share * total:
            return value
    return sorted(pairs)[-1][0]


def _version_view(
    rows: Sequence[FeedbackAggregate], since: float, step: float, points: int
) -> dict[str, Any]:
    classes: dict[str, list[int]] = {}
    histogram = [0] * 10
    success = errors = 0
    p50: list[tuple[int, int]] = []
    p99: list[tuple[int, int]] = []
    for row in rows:
        slot = min(points - 1, max(0, int((row.bucket_start - since) // step)))
        for class_id, label, count in row.class_counts:
            series = classes.setdefault(str(label or class_id), [0] * points)
            series[slot] += int(count)
        for index, count in enumerate(list(row.confidence_histogram)[:10]):
            histogram[index] += int(count)
        success += row.success_count
        errors += row.error_count
        if row.latency_count:
            p50.append((row.latency_p50_us, row.latency_count))
            p99.append((row.latency_p99_us, row.latency_count))
    requests = success + errors
    return {
        "predictions": success,
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "latency_p50_us": _weighted_percentile(p50, 0.5),
        "latency_p99_us": _weighted_percentile(p99, 0.99),
        "classes": dict(sorted(classes.items())),
        "confidence_histogram": histogram,
        "gateways": sorted({row.gateway_id for row in rows}),
    }


def feedback_view(db: Database, registry: Registry, query: FeedbackQuery) -> dict[str, Any]:
    """The JSON of GET /api/v1/feedback/{model}."""
    query.check()
    published = registry.versions(query.model)  # NotFound for an unknown model
    by_name = {v.version: v for v in published}
    versions = list(query.versions) or [v.version for v in published[-2:]][::-1]
    for version in versions:
        if version not in by_name:
            raise NotFound(f"model {query.model!r} has no version {version!r}")
    span = query.until - query.since
    points = MAX_POINTS
    step = span / points
    with db.session() as session:
        rows = session.scalars(
            select(FeedbackAggregate).where(
                FeedbackAggregate.model_name == query.model,
                FeedbackAggregate.model_version.in_(versions),
                FeedbackAggregate.bucket_start >= query.since,
                FeedbackAggregate.bucket_start < query.until,
            )
        ).all()
    result = []
    for version in versions:
        mine = [r for r in rows if r.model_version == version]
        view = _version_view(mine, query.since, step, points)
        view["version"] = version
        view["hard_examples_allowed"] = hard_examples_allowed(by_name[version])
        view["hard_examples"] = (
            _examples(db, query, version) if view["hard_examples_allowed"] else []
        )
        result.append(view)
    return {
        "model": query.model,
        "since": query.since,
        "until": query.until,
        "step_seconds": step,
        "points": points,
        "published": [v.version for v in published],
        "versions": result,
    }


def _examples(db: Database, query: FeedbackQuery, version: str, limit: int = 48) -> list[Any]:
    with db.session() as session:
        rows = session.execute(
            select(
                HardExampleRow.id,
                HardExampleRow.gateway_id,
                HardExampleRow.predicted_label,
                HardExampleRow.predicted_class,
                HardExampleRow.confidence,
                HardExampleRow.reason,
                HardExampleRow.captured_at,
            )
            .where(
                HardExampleRow.model_name == query.model,
                HardExampleRow.model_version == version,
                HardExampleRow.captured_at >= query.since,
                HardExampleRow.captured_at < query.until,
            )
            .order_by(HardExampleRow.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "id": r.id,
            "gateway_id": r.gateway_id,
            "label": r.predicted_label or str(r.predicted_class),
            "confidence": r.confidence,
            "reason": r.reason,
            "captured_at": r.captured_at,
            "image": f"/api/v1/hard-examples/{r.id}/image",
        }
        for r in rows
    ]


def hard_example(db: Database, registry: Registry, example_id: int) -> tuple[bytes, str]:
    """One hard example's image bytes and content type, while its version's policy allows
    them (a policy can only be tightened by publishing a new version)."""
    with db.session() as session:
        row = session.get(HardExampleRow, example_id)
        if row is None:
            raise NotFound(f"no hard example {example_id}")
        model, version, data, kind = row.model_name, row.model_version, row.data, row.content_type
    try:
        allowed = hard_examples_allowed(registry.version(model, version))
    except NotFound:
        allowed = False
    if not allowed:
        raise NotFound(f"hard example {example_id}: {model} {version} does not share examples")
    return bytes(data), kind if kind in IMAGE_TYPES else "application/octet-stream"


def default_range(hours: float = 1.0) -> tuple[float, float]:
    now = time.time()
    return now - hours * 3600, now + 60
