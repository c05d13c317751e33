"""Hard-example triggers within the signed policy (low margin, drift burst), and the
split of a drained batch into upload items by priority class."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from edge_contracts.manifest import Manifest, parse_manifest
from edge_server.drift.monitor import DriftMonitor, DriftSettings
from edge_server.feedback.outbox import AGGREGATES, EXAMPLES
from edge_server.feedback.pipeline import decode_payload, outbox_items
from edge_server.feedback.recorder import FeedbackRecorder
from edge_server.inference.postprocess import Classification, ClassScore

REFERENCE: dict[str, Any] = {
    "samples": 10,
    "class_counts": [5, 5],
    "confidence_histogram": [0] * 9 + [10],
    "low_margin_share": 0.0,
}


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, "PNG")
    return buffer.getvalue()


def manifest(**feedback: Any) -> Manifest:
    policy = {"policy": "hard_examples", "low_confidence": 0.3, "max_examples_per_hour": 100}
    return parse_manifest(
        {"name": "m", "version": "1", "feedback": {**policy, **feedback}, "reference": REFERENCE}
    )


def test_low_margin_is_a_trigger_only_when_the_policy_names_it() -> None:
    recorder = FeedbackRecorder(bucket_seconds=1)
    recorder.record("m", "1", manifest(), 0, "a", 0.5, 10, png(1), margin=0.05)
    chosen = manifest(triggers=["low_margin"], low_margin=0.1)
    # The policy is read once per version: the second policy belongs to version 2.
    recorder.record("m", "2", chosen, 0, "a", 0.5, 10, png(2), margin=0.05)
    recorder.record("m", "2", chosen, 0, "a", 0.1, 10, png(3), margin=0.5)  # low_confidence off
    batch = recorder.drain(force=True)
    assert batch is not None and [(e.data, e.reason) for e in batch.examples] == [
        (png(2), "low_margin")
    ]


def test_a_drift_burst_keeps_inputs_while_the_version_drifts() -> None:
    monitor = DriftMonitor(DriftSettings(threshold=0.3, window=64, min_samples=32))
    recorder = FeedbackRecorder(bucket_seconds=1, drift=monitor)
    policy = manifest(triggers=["drift_burst"])
    unsure = Classification(1, "b", 0.5, (ClassScore(1, "b", 0.5), ClassScore(0, "a", 0.45)))
    recorder.record("m", "1", policy, 1, "b", 0.5, 10, png(1))
    for _ in range(64):
        monitor.add("m", "1", policy, unsure)
    recorder.record("m", "1", policy, 1, "b", 0.5, 10, png(2))
    batch = recorder.drain(force=True)
    assert batch is not None
    assert [(e.data, e.reason) for e in batch.examples] == [(png(2), "drift_burst")]
    (drift,) = batch.drift
    assert drift.drifting and drift.window == 64

    items = outbox_items(batch)
    assert [(i.priority, i.model) for i in items] == [(AGGREGATES, "m"), (EXAMPLES, "m")]
    first = decode_payload(items[0].payload)
    assert first["drift"][0]["drifting"] is True and first["examples"] == []
    assert decode_payload(items[1].payload)["examples"][0]["data"] == png(2)
    assert len({i.batch_id for i in items}) == 2
