"""The drift monitor's Prometheus gauges, computed at scrape time from the windows.

Names are a contract (alerting rules use them): ``edge_model_drift_score``,
``edge_model_drifting`` (0/1), ``edge_model_low_margin_share``, each labelled by
``model`` and ``version``; plus ``edge_model_drift_window`` (predictions the score
rests on) and ``edge_model_drift_threshold``. A version with no evidence yet exports
no score (an absent series, not a misleading 0).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from edge_server.drift.monitor import DriftMonitor

__all__ = ["DriftCollector"]

_LABELS = ["model", "version"]


class DriftCollector(Collector):
    def __init__(self, monitor: DriftMonitor) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "edge_model_drift_score",
            "Drift of the live predictions from the version's signed reference: the larger "
            "Jensen-Shannon distance of class mix and top-1 confidence histogram (0..1)",
            labels=_LABELS,
        )
        drifting = GaugeMetricFamily(
            "edge_model_drifting",
            "1 when the drift score is above --drift-threshold with at least "
            "--drift-min-samples predictions in the window",
            labels=_LABELS,
        )
        low_margin = GaugeMetricFamily(
            "edge_model_low_margin_share",
            "Share of predictions in the window whose top-1 minus top-2 probability is below "
            "the reference's low_margin_threshold",
            labels=_LABELS,
        )
        window = GaugeMetricFamily(
            "edge_model_drift_window",
            "Predictions in the drift window now",
            labels=_LABELS,
        )
        for snapshot in self._monitor.snapshots():
            labels = [snapshot.model, snapshot.version]
            if snapshot.score is not None:
                score.add_metric(labels, snapshot.score)
            drifting.add_metric(labels, 1.0 if snapshot.drifting else 0.0)
            low_margin.add_metric(labels, snapshot.low_margin_share)
            window.add_metric(labels, snapshot.window)
        threshold = GaugeMetricFamily(
            "edge_model_drift_threshold", "The drift score above which a version is drifting"
        )
        threshold.add_metric([], self._monitor.settings.threshold)
        yield from (score, drifting, low_margin, window, threshold)

    def describe(self) -> Iterator[Metric]:
        return iter(())
