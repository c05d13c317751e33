"""Prometheus metrics (all named ``edge_*``), one registry per gateway instance.

Label sets stay small: model labels only ever hold names of models this gateway
serves (an unknown name from a caller becomes ``_unknown``), so a client cannot grow
the series count.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from edge_server.catalogue.serving import ModelSlot, ModelState, ServingCatalogue
from edge_server.inference.predictor import StageTimings
from edge_server.request_series import RequestSeries, Tally
from edge_server.runtime.open_files import open_files_now

# *_created series double the scrape size and nothing on a gateway dashboard uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

UNKNOWN_MODEL = "_unknown"
# 50 us .. 10 s: digits runs in tens of microseconds, MobileNet-class in milliseconds.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGES = ("preprocess", "queue", "inference", "postprocess")


class GatewayMetrics:
    """Every metric the gateway exports, registered on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # The series every inference call updates: lock-free (request_series.py: why).
        self.request_series = RequestSeries(LATENCY_BUCKETS)
        r.register(self.request_series)
        self.model_info = Gauge(
            "edge_model_info",
            "1 for the version each model serves, with its version as a label",
            ["model", "version"],
            registry=r,
        )
        self.model_ready = Gauge(
            "edge_model_ready", "1 when the model answers requests", ["model"], registry=r
        )
        self.model_loads = Counter(
            "edge_model_loads",
            "Model version loads, by result (success or failure)",
            ["model", "result"],
            registry=r,
        )
        self.model_load_duration = Histogram(
            "edge_model_load_duration_seconds",
            "Time to load and warm up a model version",
            ["model"],
            buckets=LOAD_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            "edge_auth_failures",
            "Management calls refused, by reason (missing or invalid token)",
            ["reason"],
            registry=r,
        )
        self.rejections = Counter(
            "edge_model_rejections",
            "Pushed versions refused by verification (the active version kept serving)",
            ["model"],
            registry=r,
        )
        self.rollbacks = Counter(
            "edge_model_rollbacks",
            "Rollbacks, by kind (automatic after a bad activation, or manual)",
            ["model", "kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "edge_batch_size",
            "Rows per batched session.run (dynamic batching)",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.overload_rejections = Counter(
            "edge_overload_rejections",
            "Requests refused with RESOURCE_EXHAUSTED because a model's queue was full",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "edge_queue_depth",
            "Requests admitted for a model and not yet answered",
            ["model"],
            registry=r,
        )
        self.memory_refusals = Counter(
            "edge_memory_refusals",
            "Calls refused because the memory budget was taken (also in "
            "edge_overload_rejections when retryable) or smaller than the call",
            ["model"],
            registry=r,
        )
        self.http_refused = Counter(
            "edge_http_refused_connections",
            "HTTP connections answered 503 at once because --http-max-connections were open",
            registry=r,
        )
        self._shown_versions: dict[str, str] = {}
        self._shown_failures: dict[str, int] = {}
        self._depth_source: tuple[ServingCatalogue, Callable[[str], int]] | None = None
        self._success: dict[tuple[str, str, str], tuple[Any, ...]] = {}

    def model_label(self, name: str, served: Container[str]) -> str:
        """The label for a requested model name: only served names become series."""
        return name if name in served else UNKNOWN_MODEL

    def observe_request(
        self, method: str, model: str, version: str, code: str, seconds: float
    ) -> None:
        series = self.request_series
        series.requests(method, model, version, code).inc()
        series.latency(method, model).observe(seconds)

    def in_flight_for(self, method: str) -> Tally:
        """The edge_in_flight_requests value of ``method``."""
        return self.request_series.in_flight(method)

    def observe_success(
        self, method: str, model: str, version: str, seconds: float, timings: StageTimings
    ) -> None:
        """``observe_request`` with code OK plus the four stage latencies, the series
        looked up once per (method, model, version)."""
        key = (method, model, version)
        bundle = self._success.get(key)
        if bundle is None:
            series = self.request_series
            bundle = self._success[key] = (
                series.requests(method, model, version, "OK"),
                series.latency(method, model),
                *(series.stage(model, stage) for stage in STAGES),
            )
        ok, latency, preprocess, queue, inference, postprocess = bundle
        ok.inc()
        latency.observe(seconds)
        preprocess.observe(timings.preprocess_us / 1_000_000)
        queue.observe(timings.queue_us / 1_000_000)
        inference.observe(timings.inference_us / 1_000_000)
        postprocess.observe(timings.postprocess_us / 1_000_000)

    def on_model_state(self, slot: ModelSlot) -> None:
        """ServingCatalogue listener: keep the model gauges and load counters current."""
        ready = slot.state is ModelState.READY and slot.active is not None
        self.model_ready.labels(slot.name).set(1 if ready else 0)
        failures_seen = self._shown_failures.get(slot.name, 0)
        if slot.load_failures > failures_seen:
            self.model_loads.labels(slot.name, "failure").inc(slot.load_failures - failures_seen)
            self._shown_failures[slot.name] = slot.load_failures
        active = slot.active
        previous = self._shown_versions.get(slot.name)
        if active is not None and previous != active.version:
            if previous is not None:
                self.model_info.remove(slot.name, previous)
                # Drop the old version's cached bundle (bounded label sets).
                self._success = {k: v for k, v in self._success.items() if k[2] != previous}
            self.model_info.labels(slot.name, active.version).set(1)
            self._shown_versions[slot.name] = active.version
            self.model_loads.labels(slot.name, "success").inc()
            self.model_load_duration.labels(slot.name).observe(active.load_seconds)

    def observe_batch(self, model: str, rows: int) -> None:
        self.batch_size.labels(model).observe(rows)

    def track_queue_depth(self, models: ServingCatalogue, depth: Callable[[str], int]) -> None:
        """Read queue depths at scrape time: nothing to update on the request path."""
        self._depth_source = (models, depth)

    def track_descriptors(
        self, open_files_limit: int, http_connections: Callable[[], int], http_max: int
    ) -> None:
        """Descriptor limits and use, read at scrape time (see runtime/open_files.py)."""
        r = self.registry
        Gauge("edge_open_files_limit", "Soft RLIMIT_NOFILE after start-up", registry=r).set(
            open_files_limit
        )
        Gauge("edge_open_files", "File descriptors held now", registry=r).set_function(
            lambda: float(open_files_now())
        )
        Gauge("edge_http_connections", "HTTP connections open now", registry=r).set_function(
            lambda: float(http_connections())
        )
        Gauge("edge_http_max_connections", "The HTTP connection cap", registry=r).set(http_max)

    def track_memory(self, budget_bytes: int, in_use: Callable[[], int]) -> None:
        """The memory budget and the bytes reserved now (edge_server/scheduling/admission.py)."""
        r = self.registry
        Gauge(
            "edge_memory_budget_bytes",
            "Bytes calls in flight may reserve together (--memory-budget-bytes)",
            registry=r,
        ).set(budget_bytes)
        Gauge(
            "edge_memory_in_use_bytes",
            "Bytes reserved by calls in flight now (payloads, decoded images, tensors)",
            registry=r,
        ).set_function(lambda: float(in_use()))

    def render(self) -> bytes:
        if self._depth_source is not None:
            models, depth = self._depth_source
            for slot in models.slots():
                self.queue_depth.labels(slot.name).set(depth(slot.name))
        return generate_latest(self.registry)
