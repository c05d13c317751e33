"""The drift window and monitor: O(1) rolling counts, the score as the larger of the two
Jensen-Shannon distances, the drifting verdict, bounded versions, and the gauges."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from edge_contracts.distribution_shift import jensen_shannon_distance
from edge_contracts.drift_reference import parse_reference
from edge_contracts.manifest import Manifest, parse_manifest
from edge_server.drift.metrics import DriftCollector
from edge_server.drift.monitor import DriftMonitor, DriftSettings, margin_of
from edge_server.drift.window import DriftWindow, drift_score
from edge_server.inference.postprocess import Classification, ClassScore
from tests.support.metrics_text import sample

REFERENCE: dict[str, Any] = {
    "samples": 100,
    "class_counts": [50, 50],
    "confidence_histogram": [0] * 9 + [100],
    "low_margin_threshold": 0.2,
    "low_margin_share": 0.0,
}


def result(class_id: int, top1: float, top2: float | None = None) -> Classification:
    top = [ClassScore(class_id, str(class_id), top1)]
    if top2 is not None:
        top.append(ClassScore(1 - class_id, "", top2))
    return Classification(class_id, str(class_id), top1, tuple(top))


def manifest(reference: Any = REFERENCE) -> Manifest:
    return parse_manifest({"name": "m", "version": "1", "reference": reference})


def test_the_window_keeps_the_last_predictions_and_matches_the_statistic() -> None:
    window = DriftWindow("m", "1", parse_reference(REFERENCE), size=4)
    for class_id in (0, 0, 0, 0, 1, 1):  # the first two zeros leave the window
        window.add(class_id, 0.95, 0.9)
    snapshot = window.snapshot(threshold=0.5, min_samples=4)
    assert snapshot.window == 4
    assert snapshot.class_distance == pytest.approx(0.0)  # [2, 2] against [50, 50]
    assert snapshot.confidence_distance == pytest.approx(0.0)
    window.add(5, 0.35, 0.05)  # a class the reference does not know, low confidence and margin
    snapshot = window.snapshot(threshold=0.2, min_samples=4)
    expected = jensen_shannon_distance([1, 2, 1], [50, 50, 0])
    assert snapshot.class_distance == pytest.approx(expected)
    assert snapshot.score == max(snapshot.class_distance or 0, snapshot.confidence_distance or 0)
    assert snapshot.low_margin_share == 0.25 and snapshot.drifting


def test_no_verdict_without_enough_evidence() -> None:
    window = DriftWindow("m", "1", parse_reference(REFERENCE), size=100)
    assert window.snapshot(0.1, 10).score is None
    for _ in range(9):
        window.add(0, 0.3, 0.0)
    assert not window.snapshot(0.1, 10).drifting  # far off, but only 9 predictions
    window.add(0, 0.3, 0.0)
    assert window.snapshot(0.1, 10).drifting


def test_drift_score_is_the_larger_distance() -> None:
    assert drift_score(0.1, 0.4) == 0.4
    assert drift_score(None, 0.2) == 0.2
    assert drift_score(None, None) is None


def test_margin_uses_the_second_class_or_its_upper_bound() -> None:
    assert margin_of(result(0, 0.6, 0.3)) == pytest.approx(0.3)
    assert margin_of(result(0, 0.6)) == pytest.approx(0.2)  # top-2 <= 0.4


def test_monitor_flags_a_shift_and_ignores_versions_without_a_sound_reference() -> None:
    monitor = DriftMonitor(DriftSettings(threshold=0.3, window=200, min_samples=50))
    for i in range(64):
        monitor.add("m", "1", manifest(), result(i % 2, 0.97, 0.01))
    assert not monitor.is_drifting("m", "1")
    for _ in range(200):  # one class, unsure: the inverted-image picture
        monitor.add("m", "1", manifest(), result(1, 0.45, 0.4))
    assert monitor.is_drifting("m", "1")
    monitor.add("m", "2", parse_manifest({"name": "m"}), result(0, 0.9))  # no reference
    monitor.add("m", "3", manifest({"samples": -1}), result(0, 0.9))  # unsound: warned, skipped
    (snapshot,) = monitor.snapshots()
    assert (snapshot.version, snapshot.window, snapshot.drifting) == ("1", 200, True)
    assert snapshot.low_margin_share == 1.0


def test_monitor_keeps_at_most_max_versions() -> None:
    monitor = DriftMonitor(DriftSettings(max_versions=2))
    for version in ("1", "2", "3", "2"):
        monitor.add("m", version, manifest(), result(0, 0.9, 0.05))
    assert [s.version for s in monitor.snapshots()] == ["2", "3"]


def test_gauges_carry_the_contract_names() -> None:
    monitor = DriftMonitor(DriftSettings(threshold=0.3, window=100, min_samples=10))
    registry = CollectorRegistry()
    registry.register(DriftCollector(monitor))
    empty = generate_latest(registry).decode()
    assert (
        "edge_model_drift_score{" not in empty
        and sample(empty, "edge_model_drift_threshold") == 0.3
    )
    for _ in range(20):
        monitor.add("m", "1", manifest(), result(1, 0.45, 0.4))
    page = generate_latest(registry).decode()
    labels = {"model": "m", "version": "1"}
    assert sample(page, "edge_model_drift_score", **labels) > 0.3
    assert sample(page, "edge_model_drifting", **labels) == 1.0
    assert sample(page, "edge_model_low_margin_share", **labels) == 1.0
    assert sample(page, "edge_model_drift_window", **labels) == 20
