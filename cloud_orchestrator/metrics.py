"""The orchestrator's Prometheus metrics (all named ``edge_orchestrator_*``), on a registry
of its own.

What a page is made of:
- fleet counts read at scrape time by one aggregate query (fleet/census.py): gateways
  online/offline/unobserved, gateways drifting, rollouts per state, and whether that
  query worked;
- what this process did: open Subscribe streams, bytes served by FetchModel, steps of
  the rollouts its runner drove;
- process and Python metrics (``process_*``, ``python_*``).

``OrchestratorMetrics.render()`` returns the page and ``CONTENT_TYPE`` is its media type:
whatever serves ``GET /metrics`` (``edge-orchestrator serve --metrics-port``:
metrics_listener.py; an HTTP console) calls them.
``render()`` blocks on one database query: on an event loop, call it through
``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cloud_orchestrator.fleet.census import FleetCensus
from cloud_orchestrator.rollouts.observer import RolloutObserver

__all__ = ["CONTENT_TYPE", "OrchestratorMetrics"]

logger = logging.getLogger(__name__)

# *_created series double the page and no alert or dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# What render() writes: the classic text format (every name already legacy-safe), which
# every Prometheus release parses under this media type.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _FleetCollector(Collector):
    """Families computed at scrape time, from one census query."""

    def __init__(self, census: Callable[[], FleetCensus]) -> None:
        self._census = census

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: registering must not query the database.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gateways, rollouts, up, seconds, drifting = self._families()
        started = time.perf_counter()
        try:
            census = self._census()
        except Exception:
            # The page still answers (process metrics, counters); the fleet families are
            # left out rather than reported as zeros nobody measured.
            logger.warning("fleet counts for /metrics failed", exc_info=True)
            up.add_metric([], 0)
        else:
            up.add_metric([], 1)
            seconds.add_metric([], time.perf_counter() - started)
            for state, count in census.gateways.items():
                gateways.add_metric([state], count)
            for state, count in census.rollouts.items():
                rollouts.add_metric([state], count)
            drifting.add_metric([], census.drifting)
            yield from (gateways, rollouts, drifting, seconds)
        yield up

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "edge_orchestrator_gateways",
                "Registered gateways by presence: online (seen within the presence window), "
                "offline (pull gateways not seen since), unobserved (push gateways not seen "
                "since: only dialled during rollouts)",
                labels=["state"],
            ),
            GaugeMetricFamily(
                "edge_orchestrator_rollouts", "Rollouts in each state", labels=["state"]
            ),
            GaugeMetricFamily(
                "edge_orchestrator_database_up",
                "1 when this scrape's fleet query succeeded, 0 when the database failed it",
            ),
            GaugeMetricFamily(
                "edge_orchestrator_census_duration_seconds",
                "Time the fleet query of this scrape took",
            ),
            GaugeMetricFamily(
                "edge_orchestrator_gateways_drifting",
                "Gateways whose newest drift report says the version they run is drifting "
                "(edge_model_drifting on the gateway, sent with its result batches)",
            ),
        )


class _RolloutSteps(RolloutObserver):
    """Counts what the rollout runner of this process does (it reports here)."""

    def __init__(self, events: Counter) -> None:
        self._events = events

    def on_target(self, rollout_id: str, gateway_id: str, state: str, detail: str) -> None:
        self._events.labels(f"target_{state.lower()}").inc()

    def on_wave(self, rollout_id: str, wave: int, waves: int) -> None:
        self._events.labels("wave_started").inc()


class OrchestratorMetrics:
    """Every metric the orchestrator exports, on its own registry.

    ``census``: the fleet counts (fleet/census.py), read at each scrape; None leaves the
    fleet families out (a servicer built on its own).
    """

    def __init__(self, census: Callable[[], FleetCensus] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.subscribe_streams = Gauge(
            "edge_orchestrator_subscribe_streams",
            "Subscribe streams open on this process (pull gateways connected to it)",
            registry=r,
        )
        self.desired_fanout_seconds = Histogram(
            "edge_orchestrator_desired_fanout_seconds",
            "From a desired-state change reaching this process to the last of its "
            "Subscribe streams sending it (or finding nothing new for its gateway)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.fetch_model_bytes = Counter(
            "edge_orchestrator_fetch_model_bytes",
            "Bundle bytes this process sent to gateways through FetchModel",
            registry=r,
        )
        self.rollout_events = Counter(
            "edge_orchestrator_rollout_events",
            "Rollout steps this process's runner took: wave_started, or target_<state> "
            "when a gateway of a rollout entered that state (pushing, watching, succeeded, "
            "failed, rolled_back, skipped)",
            ["kind"],
            registry=r,
        )
        if census is not None:
            r.register(_FleetCollector(census))
        self.rollout_observer: RolloutObserver = _RolloutSteps(self.rollout_events)

    def render(self) -> bytes:
        """The page in Prometheus text format (``CONTENT_TYPE``); blocking."""
        return generate_latest(self.registry)
