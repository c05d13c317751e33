"""The gateway's link to the cloud: subscription, reconciler, status reports, feedback.

Built from settings when ``--orchestrator`` is set. Every loop survives the cloud
being away: the subscription reconnects with exponential backoff and jitter, status
events wait in a bounded queue, results wait in the SQLite outbox, and the gateway
keeps serving from its local model store throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from edge_contracts.backoff import Backoff
from edge_contracts.shadow_evidence import ShadowEvidence
from edge_server import __version__
from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.drift.monitor import DriftMonitor, margin_of
from edge_server.errors import CloudUnavailable
from edge_server.feedback.outbox import Outbox
from edge_server.feedback.pipeline import FeedbackPipeline
from edge_server.feedback.recorder import FeedbackRecorder
from edge_server.inference.predictor import PredictInput, PredictOutput
from edge_server.lifecycle.assembly import Lifecycle
from edge_server.pull.orchestrator_client import OrchestratorClient
from edge_server.pull.reconciler import Reconciler
from edge_server.pull.types import StatusEvent
from edge_server.settings import Settings

__all__ = ["CloudLink"]

logger = logging.getLogger(__name__)

MAX_QUEUED_EVENTS = 256
STATUS_REFRESH_SECONDS = 30.0
# While a version runs in shadow: a rollout's evidence gate waits for its counts.
SHADOW_REFRESH_SECONDS = 2.0
# Sooner while a reported model was still loading: a gateway that connects during its
# start-up would otherwise show LOADING in the inventory for STATUS_REFRESH_SECONDS.
LOADING_REFRESH_SECONDS = 1.0


class CloudLink:
    """Pull mode and feedback upload. ``observe`` and ``observe_disagreement`` are what
    the predictor and the shadow runner report to; edge_server/assembly.py hands them over
    when it builds those parts."""

    def __init__(
        self,
        settings: Settings,
        manager: ServingCatalogue,
        lifecycle: Lifecycle,
        registry: CollectorRegistry | None = None,
        drift: DriftMonitor | None = None,
    ) -> None:
        self.settings = settings
        self.client = OrchestratorClient(
            settings.cloud.orchestrator,
            settings.effective_gateway_id,
            settings.effective_orchestrator_token,
            settings.cloud.orchestrator_ca,
            identity_file=settings.orchestrator_identity_file,
        )
        self.reconciler = Reconciler(
            manager,
            lifecycle.updater,
            lifecycle.activator,
            lifecycle.ledger,
            self.client.fetch,
            self._queue_event,
            source=f"orchestrator {settings.cloud.orchestrator}",
        )
        self.recorder = FeedbackRecorder(settings.feedback.feedback_bucket_seconds, drift=drift)
        self.dropped_batches = Counter(
            "edge_feedback_dropped_batches",
            "Feedback batches the outbox dropped (oldest first) to stay under its byte cap",
            registry=registry,
        )
        self.outbox_dropped = Counter(
            "edge_outbox_dropped",
            "Outbox items lost unsent, by model and reason: budget (the model's hard-example "
            "bytes per day), expired (--outbox-ttl), full (--outbox-max-bytes)",
            ["model", "reason"],
            registry=registry,
        )
        self.connected_gauge = Gauge(
            "edge_orchestrator_connected",
            "1 while the subscription to the orchestrator is open",
            registry=registry,
        )
        feedback = settings.feedback
        self.feedback = FeedbackPipeline(
            self.recorder,
            Outbox(
                settings.effective_feedback_db,
                feedback.outbox_max_bytes,
                ttl_seconds=feedback.outbox_ttl,
                budget_bytes_per_day=feedback.uplink_budget_bytes_per_day,
                on_drop=self._count_drop,
            ),
            self.client.report_results,
            flush_seconds=min(5.0, float(feedback.feedback_bucket_seconds)),
        )
        lifecycle.activator.on_rolled_back.append(
            lambda model, version, reason: self._queue_event(
                StatusEvent(model, version, "ROLLED_BACK", reason, time.time())
            )
        )
        self.connected = False
        # Evidence of the versions in shadow; assembly.py hands the shadow runner's over.
        self.shadow_evidence: Callable[[], list[tuple[str, str, ShadowEvidence]]] = list
        self._events: deque[StatusEvent] = deque(maxlen=MAX_QUEUED_EVENTS)
        self._status_due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _count_drop(self, model: str, reason: str, count: int) -> None:
        """Called from the outbox's worker thread (prometheus_client counters are locked)."""
        self.outbox_dropped.labels(model, reason).inc(count)
        if reason == "full":
            self.dropped_batches.inc(count)

    # -- request path -----------------------------------------------------------------------

    def observe_disagreement(
        self,
        active: ServingModel,
        shadow: ServingModel,
        image: bytes | None,
        active_class: int,
        shadow_class: int,
    ) -> None:
        """Inputs on which a shadow version disagreed: hard examples, policy permitting."""
        if image is not None:
            self.recorder.record_disagreement(
                active.name,
                active.version,
                active.manifest,
                active_class,
                active.manifest.label_for(active_class),
                image,
            )

    def observe(
        self, model: ServingModel, request: PredictInput, output: PredictOutput | None
    ) -> None:
        """One cheap in-memory update per Predict; the disk is written off the loop."""
        if output is None:
            self.recorder.record_error(model.name, model.version)
            return
        c = output.classification
        self.recorder.record(
            model.name,
            model.version,
            model.manifest,
            c.class_id,
            c.label,
            c.confidence,
            output.timings.total_us,
            request.image,
            margin_of(c),
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, models_loaded: Callable[[], Awaitable[None]] | None = None) -> None:
        """Start the loops; the reconciler waits for ``models_loaded`` so it never races
        the start-up load of the local store."""
        await self.feedback.start()

        async def reconcile() -> None:
            if models_loaded is not None:
                with contextlib.suppress(Exception):
                    await models_loaded()
            await self.reconciler.run()

        self._tasks = [
            asyncio.create_task(self._subscription_loop(), name="orchestrator-subscription"),
            asyncio.create_task(reconcile(), name="orchestrator-reconciler"),
            asyncio.create_task(self._status_loop(), name="orchestrator-status"),
        ]
        logger.info(
            "pull mode: gateway %s dials out to %s",
            self.settings.effective_gateway_id,
            self.settings.cloud.orchestrator,
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.feedback.stop()
        finally:
            await self.client.close()

    # -- loops ------------------------------------------------------------------------------

    def _queue_event(self, event: StatusEvent) -> None:
        self._events.append(event)
        self._status_due.set()

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            logger.info(
                "orchestrator %s %s",
                self.settings.cloud.orchestrator,
                "connected" if connected else "unreachable; serving from the local store",
            )
        self.connected = connected
        self.connected_gauge.set(1 if connected else 0)

    async def _subscription_loop(self) -> None:
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await self.client.ensure_identity(__version__)  # once; then kept on disk
                stream = self.client.subscribe(
                    self.settings.cloud.gateway_labels, __version__, self.reconciler.running()
                )
                async for desired in stream:
                    if not self.connected:
                        self._set_connected(True)
                        backoff.reset()
                        self._status_due.set()
                        self.feedback.nudge()
                    if desired is not None:
                        self.reconciler.set_desired(desired)
            except CloudUnavailable as exc:
                logger.debug("subscription ended: %s", exc)
            self._set_connected(False)
            await asyncio.sleep(backoff.next())

    async def _status_loop(self) -> None:
        backoff = Backoff(1.0, 30.0)
        refresh = STATUS_REFRESH_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_due.wait(), refresh)
            self._status_due.clear()
            if not self.connected:
                continue
            events = list(self._events)
            running = self.reconciler.running()
            loading = any(m.state == "LOADING" for m in running)
            shadows = self.shadow_evidence()
            refresh = LOADING_REFRESH_SECONDS if loading else STATUS_REFRESH_SECONDS
            if shadows:
                refresh = min(refresh, SHADOW_REFRESH_SECONDS)
            try:
                await self.client.report_status(running, events, shadows)
            except CloudUnavailable as exc:
                logger.debug("status report failed: %s", exc)
                await asyncio.sleep(backoff.next())
                self._status_due.set()
                continue
            backoff.reset()
            for _ in events:
                self._events.popleft()
