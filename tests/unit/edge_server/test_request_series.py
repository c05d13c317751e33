"""The lock-free request series expose exactly what prometheus_client's own metrics do."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge_server.inference.predictor import StageTimings
from edge_server.metrics import LATENCY_BUCKETS, STAGES, GatewayMetrics
from edge_server.request_series import (
    IN_FLIGHT,
    IN_FLIGHT_HELP,
    REQUEST_LATENCY,
    REQUEST_LATENCY_HELP,
    REQUESTS,
    REQUESTS_HELP,
    STAGE_LATENCY,
    STAGE_LATENCY_HELP,
    RequestSeries,
)


def _reference() -> tuple[CollectorRegistry, Counter, Histogram, Histogram, Gauge]:
    registry = CollectorRegistry()
    requests = Counter(
        REQUESTS, REQUESTS_HELP, ["method", "model", "version", "code"], registry=registry
    )
    latency = Histogram(
        REQUEST_LATENCY,
        REQUEST_LATENCY_HELP,
        ["method", "model"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    stages = Histogram(
        STAGE_LATENCY,
        STAGE_LATENCY_HELP,
        ["model", "stage"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    in_flight = Gauge(IN_FLIGHT, IN_FLIGHT_HELP, ["method"], registry=registry)
    return registry, requests, latency, stages, in_flight


def test_the_page_is_byte_for_byte_prometheus_clients() -> None:
    registry, requests, latency, stages, in_flight = _reference()
    series = RequestSeries(LATENCY_BUCKETS)
    ours = CollectorRegistry()
    ours.register(series)
    rng = random.Random(7)
    # Every bound itself (le means "less than or equal"), 0, beyond the last bound, and
    # values spread over the range, under two methods, models and codes.
    values = [*LATENCY_BUCKETS, 0.0, 10.5, 99.0] + [rng.uniform(0, 0.02) for _ in range(300)]
    for i, seconds in enumerate(values):
        method, model = ("Predict", "digits") if i % 3 else ("http_predict", "mobilenet")
        code = "OK" if i % 7 else "INVALID_ARGUMENT"
        requests.labels(method, model, "1", code).inc()
        series.requests(method, model, "1", code).inc()
        latency.labels(method, model).observe(seconds)
        series.latency(method, model).observe(seconds)
        stages.labels(model, STAGES[i % 4]).observe(seconds / 3)
        series.stage(model, STAGES[i % 4]).observe(seconds / 3)
    in_flight.labels("Predict").inc(3)
    series.in_flight("Predict").inc(3)
    in_flight.labels("Predict").dec()
    series.in_flight("Predict").dec()
    assert generate_latest(ours) == generate_latest(registry)


def test_an_empty_page_names_every_family() -> None:
    registry, *_ = _reference()
    ours = CollectorRegistry()
    ours.register(RequestSeries(LATENCY_BUCKETS))
    assert generate_latest(ours) == generate_latest(registry)


def test_gateway_metrics_count_a_success_and_a_failure() -> None:
    metrics = GatewayMetrics()
    metrics.observe_success("Predict", "digits", "2", 0.003, StageTimings(100, 200, 2000, 50, 3000))
    metrics.observe_request("Predict", "digits", "", "NOT_FOUND", 0.0001)
    in_flight = metrics.in_flight_for("Predict")
    in_flight.inc()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    ok = {"method": "Predict", "model": "digits", "version": "2", "code": "OK"}
    assert value("edge_requests_total", **ok) == 1
    assert value("edge_requests_total", **{**ok, "version": "", "code": "NOT_FOUND"}) == 1
    assert value("edge_request_latency_seconds_count", method="Predict", model="digits") == 2
    assert value("edge_request_latency_seconds_sum", method="Predict", model="digits") == (
        0.003 + 0.0001
    )
    queue = {"model": "digits", "stage": "queue"}
    assert value("edge_stage_latency_seconds_bucket", **queue, le="0.0001") == 0
    assert value("edge_stage_latency_seconds_bucket", **queue, le="0.00025") == 1
    assert value("edge_stage_latency_seconds_sum", model="digits", stage="inference") == 0.002
    assert value("edge_in_flight_requests", method="Predict") == 1
