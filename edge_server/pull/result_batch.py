"""An outbox item (the JSON the feedback pipeline wrote) as the ResultBatch the cloud reads,
with the outbox's loss totals and the drift reports of the batch."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from edge_contracts.proto.edge.v1 import orchestrator_pb2
from edge_server.feedback.outbox import Drops
from edge_server.feedback.pipeline import decode_payload

__all__ = ["result_batch", "timestamp"]

_REASONS = {
    "low_confidence": orchestrator_pb2.HARD_EXAMPLE_REASON_LOW_CONFIDENCE,
    "shadow_disagreement": orchestrator_pb2.HARD_EXAMPLE_REASON_SHADOW_DISAGREEMENT,
    "low_margin": orchestrator_pb2.HARD_EXAMPLE_REASON_LOW_MARGIN,
    "drift_burst": orchestrator_pb2.HARD_EXAMPLE_REASON_DRIFT_BURST,
}
_DROP_REASONS = {
    "budget": orchestrator_pb2.OUTBOX_DROP_REASON_BUDGET,
    "expired": orchestrator_pb2.OUTBOX_DROP_REASON_EXPIRED,
    "full": orchestrator_pb2.OUTBOX_DROP_REASON_FULL,
}


def timestamp(value: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(value * 1e9))
    return stamp


def _drift(item: dict[str, Any]) -> orchestrator_pb2.DriftReport:
    def distance(key: str) -> float:
        value = item.get(key)
        return float(value) if value is not None else 0.0

    return orchestrator_pb2.DriftReport(
        model_name=item["model"],
        model_version=item["version"],
        score=distance("score"),
        class_distance=distance("class_distance"),
        confidence_distance=distance("confidence_distance"),
        low_margin_share=float(item["low_margin_share"]),
        reference_low_margin_share=float(item["reference_low_margin_share"]),
        window=int(item["window"]),
        drifting=bool(item["drifting"]),
    )


def _aggregate(item: dict[str, Any]) -> orchestrator_pb2.ResultAggregate:
    latency = item["latency"]
    return orchestrator_pb2.ResultAggregate(
        model_name=item["model"],
        model_version=item["version"],
        bucket_start=timestamp(item["bucket_start"]),
        bucket_seconds=int(item["bucket_seconds"]),
        class_counts=[
            orchestrator_pb2.ClassCount(class_id=int(cid), label=str(label), count=int(count))
            for cid, label, count in item["classes"]
        ],
        confidence_histogram=[int(c) for c in item["confidence_histogram"]],
        latency=orchestrator_pb2.LatencySummary(
            count=latency["count"],
            sum_us=latency["sum_us"],
            max_us=latency["max_us"],
            p50_us=latency["p50_us"],
            p99_us=latency["p99_us"],
        ),
        error_count=int(item["errors"]),
        success_count=int(item["successes"]),
    )


def result_batch(payload: bytes, drops: Drops) -> orchestrator_pb2.ResultBatch:
    document = decode_payload(payload)
    return orchestrator_pb2.ResultBatch(
        batch_id=document["batch_id"],
        created_at=timestamp(document["created_at"]),
        aggregates=[_aggregate(a) for a in document["aggregates"]],
        hard_examples=[
            orchestrator_pb2.HardExample(
                model_name=e["model"],
                model_version=e["version"],
                predicted_class=int(e["class_id"]),
                predicted_label=e["label"],
                confidence=float(e["confidence"]),
                reason=_REASONS.get(e["reason"], orchestrator_pb2.HARD_EXAMPLE_REASON_UNSPECIFIED),
                data=e["data"],
                content_type=e["content_type"],
                captured_at=timestamp(e["captured_at"]),
            )
            for e in document["examples"]
        ],
        dropped_batches=drops.full_batches,
        drift=[_drift(d) for d in document.get("drift", [])],
        outbox_drops=[
            orchestrator_pb2.OutboxDropCount(
                model_name=model,
                reason=_DROP_REASONS.get(reason, orchestrator_pb2.OUTBOX_DROP_REASON_UNSPECIFIED),
                count=count,
            )
            for (model, reason), count in sorted(drops.by_model.items())
        ],
    )
