"""Protobuf <-> orchestrator domain conversions for edge.v1.OrchestratorService.

Everything a gateway sends is checked against the limits below on the way in, so a
field the database cannot hold (a 1 MB id, a count beyond int64, a string longer than
its column) is INVALID_ARGUMENT with the field named, never INTERNAL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.feedback.drift import DriftIn, DropIn
from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, HardExampleIn
from cloud_orchestrator.fleet.store import DesiredVersion, ReportedEvent, ReportedModel
from edge_contracts.proto.edge.v1 import model_pb2, orchestrator_pb2, types_pb2

_MODES = {
    "ACTIVATE": model_pb2.ACTIVATION_MODE_ACTIVATE,
    "STAGE": model_pb2.ACTIVATION_MODE_STAGE,
    "SHADOW": model_pb2.ACTIVATION_MODE_SHADOW,
}
_REASONS = {
    orchestrator_pb2.HARD_EXAMPLE_REASON_LOW_CONFIDENCE: "low_confidence",
    orchestrator_pb2.HARD_EXAMPLE_REASON_SHADOW_DISAGREEMENT: "shadow_disagreement",
    orchestrator_pb2.HARD_EXAMPLE_REASON_LOW_MARGIN: "low_margin",
    orchestrator_pb2.HARD_EXAMPLE_REASON_DRIFT_BURST: "drift_burst",
}
_DROP_REASONS = {
    orchestrator_pb2.OUTBOX_DROP_REASON_BUDGET: "budget",
    orchestrator_pb2.OUTBOX_DROP_REASON_EXPIRED: "expired",
    orchestrator_pb2.OUTBOX_DROP_REASON_FULL: "full",
}


INT64_MAX = (1 << 63) - 1
INT32_MAX = (1 << 31) - 1
MAX_NAME = 128  # model names, versions, ids: the width of their columns
MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 256
MAX_REASON = 4096
MAX_MODELS = 1024  # per Subscribe or ReportStatus
MAX_EVENTS = 256  # per ReportStatus: the gateway queues at most this many
MAX_AGGREGATES = 4096  # per batch
MAX_CLASSES = 100_000  # per aggregate
MAX_HISTOGRAM = 100
MAX_BUCKET_SECONDS = 31 * 86_400


def check_text(what: str, value: str, limit: int = MAX_NAME) -> str:
    if len(value) > limit:
        raise InvalidRequest(f"{what} has {len(value)} characters; at most {limit} are allowed")
    return value


def check_count(what: str, value: int, limit: int = INT64_MAX) -> int:
    if not -limit - 1 <= value <= limit:
        raise InvalidRequest(f"{what} {value} is out of range (at most {limit})")
    return value


def check_many(what: str, items: Sequence[object], limit: int) -> None:
    if len(items) > limit:
        raise InvalidRequest(f"{len(items)} {what}; at most {limit} per message")


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise InvalidRequest(f"{len(labels)} labels; at most {MAX_LABELS}")
    for key, value in labels.items():
        if not key:
            raise InvalidRequest("a label has an empty key")
        check_text(f"label key {key[:40]!r}", key, MAX_LABEL_KEY)
        check_text(f"label {key!r}", value, MAX_LABEL_VALUE)
    return labels


def check_subscribe(request: orchestrator_pb2.SubscribeRequest) -> None:
    """What Subscribe stores (labels, software version, running models) fits."""
    check_labels(dict(request.labels))
    check_text("gateway_version", request.gateway_version, 64)
    to_reported_models(request.models)


def seconds(stamp: Timestamp) -> float:
    return float(stamp.seconds) + stamp.nanos / 1e9


def timestamp(value: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(value * 1e9))
    return stamp


def to_reported_models(models: Sequence[orchestrator_pb2.RunningModel]) -> list[ReportedModel]:
    check_many("models", models, MAX_MODELS)
    return [
        ReportedModel(
            model_name=check_text("model_name", m.model_name),
            active_version=check_text("active_version", m.active_version),
            state=_enum_name(types_pb2.ModelState, m.state, "MODEL_STATE_"),
            bundle_sha256=check_text("bundle_sha256", m.bundle_sha256, 64),
        )
        for m in models
        if m.model_name
    ]


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:  # a number this orchestrator does not know (a newer gateway)
        raise InvalidRequest(f"unknown {prefix.rstrip('_').lower()} value {value}") from None


def to_reported_events(events: Sequence[orchestrator_pb2.StatusEvent]) -> list[ReportedEvent]:
    check_many("events", events, MAX_EVENTS)
    return [
        ReportedEvent(
            model_name=check_text("event model_name", e.model_name),
            model_version=check_text("event model_version", e.model_version),
            kind=_enum_name(orchestrator_pb2.StatusEventKind, e.kind, "STATUS_EVENT_KIND_"),
            reason=check_text("event reason", e.reason, MAX_REASON),
            occurred_at=seconds(e.occurred_at),
        )
        for e in events
    ]


def to_desired_state(
    desired: Sequence[DesiredVersion], generation: int
) -> orchestrator_pb2.DesiredState:
    return orchestrator_pb2.DesiredState(
        generation=generation,
        models=[
            orchestrator_pb2.DesiredModel(
                model_name=d.model_name,
                model_version=d.version,
                bundle_sha256=d.sha256,
                bundle_size=d.size_bytes,
                activation_mode=_MODES.get(d.mode, model_pb2.ACTIVATION_MODE_ACTIVATE),
                rollout_id=d.rollout_id,
                activation_window=d.window,
            )
            for d in desired
        ],
    )


def _aggregate(a: orchestrator_pb2.ResultAggregate) -> AggregateIn:
    check_many("class counts", a.class_counts, MAX_CLASSES)
    check_many("confidence histogram bins", a.confidence_histogram, MAX_HISTOGRAM)
    latency = a.latency
    return AggregateIn(
        model_name=check_text("aggregate model_name", a.model_name),
        model_version=check_text("aggregate model_version", a.model_version),
        bucket_start=seconds(a.bucket_start),
        bucket_seconds=check_count("bucket_seconds", a.bucket_seconds, MAX_BUCKET_SECONDS),
        class_counts=[
            (
                check_count("class_id", c.class_id),
                check_text("class label", c.label, MAX_LABEL_VALUE),
                check_count("class count", c.count),
            )
            for c in a.class_counts
        ],
        confidence_histogram=[check_count("histogram bin", n) for n in a.confidence_histogram],
        success_count=check_count("success_count", a.success_count),
        error_count=check_count("error_count", a.error_count),
        latency_count=check_count("latency count", latency.count),
        latency_sum_us=check_count("latency sum_us", latency.sum_us),
        latency_max_us=check_count("latency max_us", latency.max_us),
        latency_p50_us=check_count("latency p50_us", latency.p50_us),
        latency_p99_us=check_count("latency p99_us", latency.p99_us),
    )


def _example(e: orchestrator_pb2.HardExample) -> HardExampleIn:
    if not math.isfinite(e.confidence):
        raise InvalidRequest(f"hard example confidence {e.confidence} is not a number")
    return HardExampleIn(
        model_name=check_text("hard example model_name", e.model_name),
        model_version=check_text("hard example model_version", e.model_version),
        predicted_class=check_count("predicted_class", e.predicted_class, INT32_MAX),
        predicted_label=check_text("predicted_label", e.predicted_label, MAX_LABEL_VALUE),
        confidence=e.confidence,
        reason=_REASONS.get(e.reason, "unspecified"),
        data=bytes(e.data),
        content_type=check_text("content_type", e.content_type, 64),
        captured_at=seconds(e.captured_at),
    )


def to_batch(gateway_id: str, batch: orchestrator_pb2.ResultBatch) -> BatchIn:
    check_many("aggregates", batch.aggregates, MAX_AGGREGATES)
    check_many("drift reports", batch.drift, MAX_AGGREGATES)
    check_many("outbox drop counts", batch.outbox_drops, MAX_AGGREGATES)
    return BatchIn(
        batch_id=check_text("batch_id", batch.batch_id, 64),
        gateway_id=gateway_id,
        created_at=seconds(batch.created_at),
        aggregates=[_aggregate(a) for a in batch.aggregates],
        hard_examples=[_example(e) for e in batch.hard_examples],
        dropped_batches=check_count("dropped_batches", batch.dropped_batches),
        drift=[_drift(d) for d in batch.drift],
        outbox_drops=[_drop(d) for d in batch.outbox_drops],
    )


def _distance(what: str, value: float) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise InvalidRequest(f"drift {what} {value} is not within 0..1")
    return float(value)


def _drift(d: orchestrator_pb2.DriftReport) -> DriftIn:
    return DriftIn(
        model_name=check_text("drift model_name", d.model_name),
        model_version=check_text("drift model_version", d.model_version),
        score=_distance("score", d.score),
        class_distance=_distance("class_distance", d.class_distance),
        confidence_distance=_distance("confidence_distance", d.confidence_distance),
        low_margin_share=_distance("low_margin_share", d.low_margin_share),
        reference_low_margin_share=_distance(
            "reference_low_margin_share", d.reference_low_margin_share
        ),
        window=check_count("drift window", d.window),
        drifting=d.drifting,
    )


def _drop(d: orchestrator_pb2.OutboxDropCount) -> DropIn:
    reason = _DROP_REASONS.get(d.reason)
    if reason is None:
        raise InvalidRequest(f"outbox drop reason {d.reason} is not budget, expired or full")
    return DropIn(
        check_text("outbox drop model_name", d.model_name), reason, check_count("drops", d.count)
    )
