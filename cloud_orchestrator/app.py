"""Assemble the orchestrator from a database URL and an artifact folder; run its server.

``Orchestrator`` is the Python API the CLI wraps (and tests use directly);
``serve`` runs the OrchestratorService gRPC server and the rollout runner until
``stop`` is set.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cloud_orchestrator.feedback.store import FeedbackStore
from cloud_orchestrator.fleet.identity import Identities
from cloud_orchestrator.fleet.store import Fleet
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.registry.stores import check_artifacts, open_artifacts
from cloud_orchestrator.rollouts.runner import (
    Connect,
    RolloutObserver,
    RolloutRunner,
    RunnerConfig,
)
from cloud_orchestrator.rollouts.store import RolloutStore
from cloud_orchestrator.storage.db import Database

if TYPE_CHECKING:  # grpc, prometheus_client and aiohttp are imported only by `serve`
    from cloud_orchestrator.console.keys import ConsoleOptions
    from cloud_orchestrator.console.server import ConsoleServer
    from cloud_orchestrator.grpc.auth import GatewayGuard
    from cloud_orchestrator.metrics import OrchestratorMetrics
    from cloud_orchestrator.metrics_listener import MetricsListener

__all__ = ["Orchestrator", "ServeOptions", "default_instance_id", "serve", "tune_garbage_collector"]

logger = logging.getLogger(__name__)


def default_instance_id() -> str:
    """host-pid-random: unique per process, readable in rollout events."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class Orchestrator:
    def __init__(self, db_url: str, artifacts: Path | str) -> None:
        """``artifacts``: a folder, or ``"postgresql"`` for bundles in the database
        (cloud_orchestrator/registry/stores.py)."""
        check_artifacts(db_url, artifacts)
        self.db = Database(db_url)
        self.artifacts = open_artifacts(self.db, artifacts)
        self.registry = Registry(self.db, self.artifacts)
        self.fleet = Fleet(self.db, self.registry)
        self.feedback = FeedbackStore(self.db)
        self.identities = Identities(self.db)
        self.rollouts = RolloutStore(self.db, self.registry, self.fleet)

    def runner(
        self,
        config: RunnerConfig,
        observer: RolloutObserver | None = None,
        connect: Connect | None = None,
    ) -> RolloutRunner:
        if connect is None:
            from cloud_orchestrator.grpc.push_client import connect as grpc_connect

            connect = grpc_connect
        return RolloutRunner(self.rollouts, self.registry, self.fleet, connect, config, observer)

    def close(self) -> None:
        self.db.dispose()


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 50070
    gateway_token: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    instance_id: str = ""
    lease_seconds: float = 30.0
    poll_seconds: float = 2.0
    heartbeat_seconds: float = 10.0
    # How often this process compares the fleet generation row (one query, whatever the
    # fleet size): changes by other processes on SQLite, lost NOTIFYs on PostgreSQL.
    desired_poll_seconds: float = 0.25
    # A full reread of the desired state even when the generation did not move: only a
    # guard (every change bumps the generation the poll above compares), and at 10,000
    # gateways a reread plus waking every stream cost a third of an idle orchestrator.
    reconcile_seconds: float = 600.0
    presence_flush_seconds: float = 5.0  # gateways' last-seen, written in one batch
    fetch_stall_seconds: float = 30.0  # a FetchModel block not read by then ends the call
    run_rollouts: bool = True
    shutdown_grace_seconds: float = 5.0
    # Per pull gateway (cloud_orchestrator/fleet/limits.py): calls per second and burst
    # per method, and what it may store per UTC day.
    rate_per_second: float = 2.0
    rate_burst: int = 30
    enroll_rate_per_second: float = 5.0  # per enrollment token
    enroll_burst: int = 50
    result_bytes_per_day: int = 64 * 1024 * 1024
    events_per_day: int = 10_000
    metrics_port: int | None = None  # GET /metrics on its own port (0: any free); None: off
    console: ConsoleOptions | None = None  # the web console (--http-port); None: off


def presence_window(options: ServeOptions) -> float:
    """Seconds since last seen within which a gateway counts as online: three missed
    heartbeats, plus the presence buffer's flush delay."""
    return 3 * options.heartbeat_seconds + options.presence_flush_seconds


def orchestrator_metrics(orchestrator: Orchestrator, options: ServeOptions) -> OrchestratorMetrics:
    """The metrics every part of ``serve`` reports to; fleet counts read at each scrape."""
    from cloud_orchestrator.fleet.census import FleetCensus, take_census
    from cloud_orchestrator.metrics import OrchestratorMetrics

    window = presence_window(options)

    def census() -> FleetCensus:
        return take_census(orchestrator.db, time.time(), window)

    return OrchestratorMetrics(census)


def gateway_guard(orchestrator: Orchestrator, options: ServeOptions) -> GatewayGuard:
    """The per-gateway credential check, rate limits and quotas of OrchestratorService."""
    from cloud_orchestrator.fleet.limits import Quotas, RateLimiter, UsageLedger
    from cloud_orchestrator.grpc.auth import GatewayGuard

    # Without --gateway-token-file or any enrollment token, enrollment is open: each
    # such enrollment is logged as a warning (cloud_orchestrator/grpc/auth.py).
    identities = Identities(orchestrator.db, options.gateway_token)
    quotas = Quotas(options.result_bytes_per_day, options.events_per_day)
    return GatewayGuard(
        identities,
        orchestrator.fleet,
        RateLimiter(options.rate_per_second, options.rate_burst),
        UsageLedger(orchestrator.db, quotas),
        RateLimiter(options.enroll_rate_per_second, options.enroll_burst),
    )


async def start_console(
    orchestrator: Orchestrator,
    options: ServeOptions,
    owner: str,
    metrics: OrchestratorMetrics,
    listener: MetricsListener | None,
) -> ConsoleServer:
    """The web console, bound before anything else starts: a busy port is one error line
    and nothing half-started. Online means what it means for the metrics."""
    from cloud_orchestrator.console.server import ConsoleServer

    assert options.console is not None
    console_options = replace(options.console, online_seconds=presence_window(options))
    console = ConsoleServer(orchestrator, console_options, owner, metrics=metrics.render)
    try:
        await console.start()
    except BaseException:
        if listener is not None:
            await asyncio.to_thread(listener.close)
        raise
    return console


# Python's cyclic collector after every 700 net allocations (the default) walked the
# objects of 10,000 streams again and again: 14 % of the orchestrator's GIL time while an
# assign reached the fleet (py-spy --gil, make bench-fleet --profile). Cycles are still
# collected, in far fewer passes; what the process built at start is frozen out of them.
# For the `serve` process only (cloud_orchestrator/cli/serve.py), not for a library user.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(orchestrator: Orchestrator, options: ServeOptions, stop: asyncio.Event) -> None:
    from cloud_orchestrator.fleet.changes import DesiredStateHub
    from cloud_orchestrator.fleet.presence import PresenceBuffer
    from cloud_orchestrator.grpc.server import OrchestratorServer
    from cloud_orchestrator.grpc.servicer import OrchestratorServicer
    from cloud_orchestrator.metrics_listener import MetricsListener
    from cloud_orchestrator.storage.group_commit import GroupCommit

    hub = DesiredStateHub(
        orchestrator.db,
        orchestrator.registry,
        orchestrator.fleet.changes,
        poll_seconds=options.desired_poll_seconds,
        reconcile_seconds=options.reconcile_seconds,
        heartbeat_seconds=options.heartbeat_seconds,
    )
    # One writer thread for every frequent write of serve (SQLite takes one at a time).
    writes = GroupCommit(orchestrator.db)
    presence = PresenceBuffer(orchestrator.fleet, writes, options.presence_flush_seconds)
    guard = gateway_guard(orchestrator, options)
    metrics = orchestrator_metrics(orchestrator, options)
    servicer = OrchestratorServicer(
        orchestrator.fleet,
        orchestrator.registry,
        orchestrator.feedback,
        hub,
        presence,
        heartbeat_seconds=options.heartbeat_seconds,
        guard=guard,
        writes=writes,
        fetch_stall_seconds=options.fetch_stall_seconds,
        metrics=metrics,
    )
    server = OrchestratorServer(
        servicer,
        options.host,
        options.port,
        options.tls_cert,
        options.tls_key,
    )
    # Bound before anything starts: a busy metrics port leaves nothing half-started.
    listener = None
    if options.metrics_port is not None:
        listener = MetricsListener(metrics, options.host, options.metrics_port)
        logger.info("orchestrator metrics on %s", listener.url)
    owner = options.instance_id or default_instance_id()
    console = None
    if options.console is not None:
        console = await start_console(orchestrator, options, owner, metrics, listener)
    await hub.start()
    presence.start()
    writes.start()
    await server.start()
    logger.info(
        "orchestrator %s listening: gRPC %s:%d%s; database %s; artifacts in %s; rollouts %s",
        owner,
        options.host,
        server.port,
        " (TLS)" if options.tls_cert else "",
        orchestrator.db.describe(),
        orchestrator.artifacts.describe(),
        "on" if options.run_rollouts else "off",
    )
    runner_task: asyncio.Task[None] | None = None
    if options.run_rollouts:
        runner = orchestrator.runner(
            RunnerConfig(owner, options.lease_seconds, options.poll_seconds),
            observer=metrics.rollout_observer,
        )
        runner_task = asyncio.create_task(runner.serve(stop))
    try:
        await stop.wait()
    finally:
        logger.info("orchestrator %s shutting down", owner)
        if runner_task is not None:
            await runner_task
        if console is not None:
            await console.stop()
        await server.stop(options.shutdown_grace_seconds)
        await hub.stop()
        await presence.stop()  # the last heartbeats' last-seen, through the writer
        await writes.stop()  # what the last calls wrote
        if listener is not None:
            await asyncio.to_thread(listener.close)
