"""The per-request series of /metrics, kept without a lock per update.

``edge_requests_total``, ``edge_request_latency_seconds``, ``edge_stage_latency_seconds``
and ``edge_in_flight_requests`` change on every inference call. prometheus_client
guards each value with a mutex: a success cost a counter, a gauge up and down and five
histogram observations (a Python loop over the buckets each), about 20 lock round
trips, measurably a few per cent of a small model's whole request on a 2-core board.
Here each series is plain Python numbers, updated by the event loop thread, the only
thread that finishes requests (edge_server/inference/request_metrics.py), and read by
``collect`` when /metrics is rendered. A scrape that reads while the loop writes may
see one request's update half applied (a count before its bucket), which the next
scrape corrects; Prometheus tolerates that, as it tolerates any scrape's timing.

The exposition is the one prometheus_client gives the same metrics: same names, help,
labels, ``le`` values (Go float formatting) and cumulative buckets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REQUESTS = "edge_requests"
REQUESTS_HELP = "gRPC requests handled, by method, model, version and gRPC status code"
REQUEST_LATENCY = "edge_request_latency_seconds"
REQUEST_LATENCY_HELP = "Whole-request latency inside the gateway"
STAGE_LATENCY = "edge_stage_latency_seconds"
STAGE_LATENCY_HELP = "Latency of each prediction stage: preprocess, queue, inference, postprocess"
IN_FLIGHT = "edge_in_flight_requests"
IN_FLIGHT_HELP = "Requests being handled now"


class Tally:
    """A counter or gauge value: ``inc`` and ``dec`` without a lock."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class LatencyHistogram:
    """Counts per bucket (not cumulative: one increment per observation) and the sum."""

    __slots__ = ("bounds", "counts", "les", "total")

    def __init__(self, bounds: tuple[float, ...], les: tuple[str, ...]) -> None:
        self.bounds = bounds
        self.les = les  # the bounds as ``le`` label values, +Inf last
        self.counts = [0] * len(les)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # The first bound >= seconds: Prometheus buckets are "less than or equal".
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, count) pairs as the exposition wants them, +Inf last."""
        running = 0
        pairs = []
        for le, count in zip(self.les, self.counts, strict=True):
            running += count
            pairs.append((le, float(running)))
        return pairs


class RequestSeries(Collector):
    """The four per-request metrics, registered on a gateway's registry as one collector."""

    def __init__(self, latency_buckets: Sequence[float]) -> None:
        self._buckets = tuple(latency_buckets)
        self._les = tuple(_go_float(b) for b in (*self._buckets, float("inf")))
        self._requests: dict[tuple[str, str, str, str], Tally] = {}
        self._latency: dict[tuple[str, str], LatencyHistogram] = {}
        self._stages: dict[tuple[str, str], LatencyHistogram] = {}
        self._in_flight: dict[str, Tally] = {}

    def requests(self, method: str, model: str, version: str, code: str) -> Tally:
        key = (method, model, version, code)
        tally = self._requests.get(key)
        if tally is None:
            tally = self._requests[key] = Tally()
        return tally

    def latency(self, method: str, model: str) -> LatencyHistogram:
        return self._histogram(self._latency, (method, model))

    def stage(self, model: str, stage: str) -> LatencyHistogram:
        return self._histogram(self._stages, (model, stage))

    def in_flight(self, method: str) -> Tally:
        tally = self._in_flight.get(method)
        if tally is None:
            tally = self._in_flight[method] = Tally()
        return tally

    def _histogram(
        self, table: dict[tuple[str, str], LatencyHistogram], key: tuple[str, str]
    ) -> LatencyHistogram:
        histogram = table.get(key)
        if histogram is None:
            histogram = table[key] = LatencyHistogram(self._buckets, self._les)
        return histogram

    def describe(self) -> Iterator[Metric]:
        """Names only, for the registry's duplicate check (no samples to compute)."""
        yield CounterMetricFamily(REQUESTS, REQUESTS_HELP)
        yield HistogramMetricFamily(REQUEST_LATENCY, REQUEST_LATENCY_HELP)
        yield HistogramMetricFamily(STAGE_LATENCY, STAGE_LATENCY_HELP)
        yield GaugeMetricFamily(IN_FLIGHT, IN_FLIGHT_HELP)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            REQUESTS, REQUESTS_HELP, labels=("method", "model", "version", "code")
        )
        for labels, tally in list(self._requests.items()):
            requests.add_metric(labels, tally.value)
        yield requests
        yield _histograms(REQUEST_LATENCY, REQUEST_LATENCY_HELP, ("method", "model"), self._latency)
        yield _histograms(STAGE_LATENCY, STAGE_LATENCY_HELP, ("model", "stage"), self._stages)
        in_flight = GaugeMetricFamily(IN_FLIGHT, IN_FLIGHT_HELP, labels=("method",))
        for method, tally in list(self._in_flight.items()):
            in_flight.add_metric((method,), tally.value)
        yield in_flight


def _go_float(value: float) -> str:
    """``le`` as prometheus_client writes it (Go's float formatting: "0.005", "+Inf")."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _histograms(
    name: str,
    documentation: str,
    label_names: tuple[str, str],
    table: dict[tuple[str, str], LatencyHistogram],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=label_names)
    for labels, histogram in list(table.items()):
        family.add_metric(labels, histogram.cumulative(), histogram.total)
    return family
