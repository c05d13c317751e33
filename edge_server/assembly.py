"""The gateway's object graph, built once from settings in dependency order.

Each part receives at construction everything it reports to, so nothing is rewired
afterwards: the feedback recorder (pull mode) and the shadow runner are handed to the
``Predictor`` when it is made, and the shadow runner runs models through the same
``InferenceRunner`` (pool and batcher) as live traffic. Who serves what on which port,
and the start and stop order, are in edge_server/listeners.py and edge_server/app.py.

A replica process (``--workers`` > 1, index > 0) builds no lifecycle, cloud link or
shadow runner: the primary owns the model store and management.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edge_server.catalogue.on_disk import DiskCatalogue
from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.drift.metrics import DriftCollector
from edge_server.drift.monitor import DriftMonitor, DriftSettings
from edge_server.inference.predictor import PredictInput, Predictor, PredictOutput, ResultObserver
from edge_server.inference.request_plan import BatchingDefaults
from edge_server.inference.runner import InferenceRunner
from edge_server.inference.shadow import ShadowRunner
from edge_server.inference.statistics import StatisticsBook
from edge_server.lifecycle.assembly import Lifecycle
from edge_server.metrics import GatewayMetrics
from edge_server.pull.agent import CloudLink
from edge_server.runtime.allocator import Trimmer
from edge_server.runtime.memory_budget import board_memory_bytes, memory_budget_bytes
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.runtime.priority import worker_pool
from edge_server.scheduling.admission import AdmissionControl
from edge_server.settings import Settings


@dataclass(frozen=True)
class GatewayParts:
    """Everything one gateway process serves with; ``Gateway`` starts and stops it."""

    metrics: GatewayMetrics
    models: ServingCatalogue
    preprocess_pool: ThreadPoolExecutor
    inference_pool: ThreadPoolExecutor
    admission: AdmissionControl
    runner: InferenceRunner
    statistics: StatisticsBook
    lifecycle: Lifecycle | None  # None on a replica
    cloud: CloudLink | None  # --orchestrator on the primary only
    shadow: ShadowRunner | None  # with the lifecycle: shadow versions are pushed there
    predictor: Predictor
    drift: DriftMonitor


def _drift(settings: Settings, metrics: GatewayMetrics) -> DriftMonitor:
    feedback = settings.feedback
    monitor = DriftMonitor(
        DriftSettings(feedback.drift_threshold, feedback.drift_window, feedback.drift_min_samples)
    )
    metrics.registry.register(DriftCollector(monitor))
    return monitor


def _observers(*observers: ResultObserver | None) -> ResultObserver:
    present = [o for o in observers if o is not None]

    def observe(model: ServingModel, request: PredictInput, output: PredictOutput | None) -> None:
        for observer in present:
            observer(model, request, output)

    return observe


def _catalogue(settings: Settings) -> ServingCatalogue:
    runtime = settings.runtime
    session_config = SessionConfig(
        intra_op_threads=settings.effective_intra_op_threads,
        inter_op_threads=runtime.inter_op_threads,
        graph_optimization=runtime.graph_optimization,
        execution_providers=runtime.execution_providers,
    )
    return ServingCatalogue(
        DiskCatalogue(Path(settings.server.model_root)),
        functools.partial(LoadedSession, config=session_config),
        pinned_versions=dict(settings.lifecycle.pinned_versions),
        default_model=settings.lifecycle.default_model,
    )


def _lifecycle(
    settings: Settings, models: ServingCatalogue, stats: StatisticsBook, metrics: GatewayMetrics
) -> Lifecycle:
    lifecycle = Lifecycle.build(settings, models, stats)
    lifecycle.updater.on_rejected.append(
        lambda model, _reason: metrics.rejections.labels(model).inc()
    )
    lifecycle.activator.on_rolled_back.append(
        lambda model, _version, reason: metrics.rollbacks.labels(
            model, "automatic" if reason.startswith("automatic") else "manual"
        ).inc()
    )
    return lifecycle


def build_parts(settings: Settings, is_replica: bool) -> GatewayParts:
    """The parts in the order they depend on each other."""
    metrics = GatewayMetrics()
    models = _catalogue(settings)
    models.add_listener(metrics.on_model_state)
    nice = settings.runtime.worker_thread_nice
    preprocess_pool = worker_pool(settings.effective_preprocess_workers, "preprocess", nice)
    inference_pool = worker_pool(settings.effective_inference_workers, "inference", nice)
    limits = settings.admission
    budget = memory_budget_bytes(
        limits.memory_budget_bytes,
        limits.memory_budget_percent,
        settings.effective_workers,
        board_memory_bytes(),
    )
    admission = AdmissionControl(
        models,
        limits.max_queue_size,
        budget,
        on_memory_refused=lambda model: metrics.memory_refusals.labels(model).inc(),
        # Memory freed after a flood goes back to the system (runtime/allocator.py).
        on_drained=Trimmer().drained,
    )
    metrics.track_memory(budget, lambda: admission.bytes_in_use)
    runner = InferenceRunner(
        inference_pool,
        admission.queue_depth,
        BatchingDefaults(limits.batching, limits.max_batch_size, limits.max_queue_delay_us),
        inference_workers=settings.effective_inference_workers,
        on_batch=metrics.observe_batch,
        inline_threshold_us=limits.inline_threshold_us,
    )
    statistics = StatisticsBook()
    # A replica never writes the model store: the primary's lifecycle does.
    lifecycle = None if is_replica else _lifecycle(settings, models, statistics, metrics)
    drift = _drift(settings, metrics)
    cloud = (
        CloudLink(settings, models, lifecycle, metrics.registry, drift)
        if settings.cloud.orchestrator and lifecycle is not None
        else None
    )
    shadow = (
        ShadowRunner(
            models,
            functools.partial(runner.run, deadline=None),  # outputs and inference time
            settings.lifecycle.shadow_sample_rate,
            on_disagreement=[cloud.observe_disagreement] if cloud else [],
        )
        if lifecycle is not None
        else None
    )
    if cloud is not None and shadow is not None:
        cloud.shadow_evidence = shadow.shadowing  # pull mode reports it to rollout gates
    predictor = Predictor(
        models,
        admission,
        runner,
        preprocess_pool,
        limits.max_image_pixels,
        statistics,
        shadow=shadow,
        on_result=_observers(drift.observe, cloud.observe if cloud else None),
    )
    metrics.track_queue_depth(models, admission.queue_depth)
    return GatewayParts(
        metrics,
        models,
        preprocess_pool,
        inference_pool,
        admission,
        runner,
        statistics,
        lifecycle,
        cloud,
        shadow,
        predictor,
        drift,
    )
