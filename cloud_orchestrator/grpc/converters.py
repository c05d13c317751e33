"""Protobuf <-> orchestrator domain conversions for edge.v1.OrchestratorService."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

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
}


def seconds(stamp: Timestamp) -> float:
    return float(stamp.seconds) + stamp.nanos / 1e9


def timestamp(value: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(value * 1e9))
    return stamp


def to_reported_models(models: Sequence[orchestrator_pb2.RunningModel]) -> list[ReportedModel]:
    return [
        ReportedModel(
            model_name=m.model_name,
            active_version=m.active_version,
            state=str(types_pb2.ModelState.Name(m.state)).removeprefix("MODEL_STATE_"),
            bundle_sha256=m.bundle_sha256,
        )
        for m in models
        if m.model_name
    ]


def to_reported_events(events: Sequence[orchestrator_pb2.StatusEvent]) -> list[ReportedEvent]:
    return [
        ReportedEvent(
            model_name=e.model_name,
            model_version=e.model_version,
            kind=str(orchestrator_pb2.StatusEventKind.Name(e.kind)).removeprefix(
                "STATUS_EVENT_KIND_"
            ),
            reason=e.reason,
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
            )
            for d in desired
        ],
    )


def to_batch(gateway_id: str, batch: orchestrator_pb2.ResultBatch) -> BatchIn:
    aggregates = [
        AggregateIn(
            model_name=a.model_name,
            model_version=a.model_version,
            bucket_start=seconds(a.bucket_start),
            bucket_seconds=a.bucket_seconds,
            class_counts=[(c.class_id, c.label, c.count) for c in a.class_counts],
            confidence_histogram=list(a.confidence_histogram),
            success_count=a.success_count,
            error_count=a.error_count,
            latency_count=a.latency.count,
            latency_sum_us=a.latency.sum_us,
            latency_max_us=a.latency.max_us,
            latency_p50_us=a.latency.p50_us,
            latency_p99_us=a.latency.p99_us,
        )
        for a in batch.aggregates
    ]
    examples = [
        HardExampleIn(
            model_name=e.model_name,
            model_version=e.model_version,
            predicted_class=e.predicted_class,
            predicted_label=e.predicted_label,
            confidence=e.confidence,
            reason=_REASONS.get(e.reason, "unspecified"),
            data=bytes(e.data),
            content_type=e.content_type,
            captured_at=seconds(e.captured_at),
        )
        for e in batch.hard_examples
    ]
    return BatchIn(
        batch_id=batch.batch_id,
        gateway_id=gateway_id,
        created_at=seconds(batch.created_at),
        aggregates=aggregates,
        hard_examples=examples,
        dropped_batches=batch.dropped_batches,
    )
