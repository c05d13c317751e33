"""The running gateway: its listeners, and the order they start and stop in.

The parts are built by edge_server/assembly.py; which services each listener serves is
edge_server/listeners.py, and edge_server/grpc_listeners.py builds those gRPC servers.
Here the start and stop sequences are tables of named steps, read top to bottom: what a
process does when it starts, and what it does, in which order, when SIGTERM comes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from edge_server import __version__
from edge_server.assembly import build_parts
from edge_server.catalogue.serving import ServingModel
from edge_server.errors import ModelNotReady, StartupError
from edge_server.gateway_info import GatewayInfo
from edge_server.grpc.health import HealthReporter
from edge_server.grpc_listeners import GrpcListeners, GrpcServing
from edge_server.http.face import HttpFace, http_routes
from edge_server.http.primary_link import PrimaryLink
from edge_server.http.server import HttpEndpoint
from edge_server.http_listeners import HttpListeners
from edge_server.listeners import (
    INFERENCE_SERVICE,
    MODEL_SERVICE,
    V2_SERVICE,
    ListenerPlan,
    plan_listeners,
)
from edge_server.runtime import allocator
from edge_server.runtime.open_files import raise_open_files_limit
from edge_server.runtime.priority import worker_pool
from edge_server.settings import Settings
from edge_server.v2.model_repository import ModelRepository
from edge_server.v2.shared_memory import SharedMemoryRegistry, state_file_for
from edge_server.workers.management_relay import ManagementRelay
from edge_server.workers.metrics_merge import merge_expositions
from edge_server.workers.private_folder import PrivateFolder
from edge_server.workers.supervisor import WorkerSupervisor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One named thing a gateway process does when it starts; skipped unless ``when``."""

    name: str
    run: Callable[[], Awaitable[None]]
    when: bool = True


async def _primary_only(name: str, version: str) -> ServingModel:
    raise ModelNotReady(
        f"cannot load {name!r} version {version!r} here: model management is served by "
        "the primary gateway process, on the management port"
    )


def lower_background_priority(settings: Settings) -> None:
    """Model loading, bundle checks and warm-ups (the loop's default executor) run below
    the event loop too: a hot swap must not slow the requests being served."""
    workers = min(32, (os.cpu_count() or 1) + 4)  # asyncio's own default size
    asyncio.get_running_loop().set_default_executor(
        worker_pool(workers, "background", settings.runtime.worker_thread_nice)
    )


class Gateway:
    """The running gateway: gRPC listeners, HTTP endpoint, models and pools.

    ``worker_index`` 0 is the primary (the only process unless ``--workers`` > 1): it
    owns the model lifecycle and management. A replica (index > 0) serves inference
    on the shared ports and follows the primary's models (see edge_server/workers).
    """

    def __init__(
        self, settings: Settings, worker_index: int = 0, private_folder: Path | None = None
    ) -> None:
        """``private_folder`` (a replica's only): the primary's folder of private sockets."""
        self.settings = settings
        self.is_replica = worker_index > 0
        # The primary of several workers, which makes the folder when it starts.
        self.several = not self.is_replica and settings.effective_workers > 1
        self.parts = build_parts(settings, self.is_replica)
        self.metrics = self.parts.metrics
        self.models = self.parts.models
        self.predictor = self.parts.predictor
        self.lifecycle = self.parts.lifecycle
        self.cloud = self.parts.cloud
        self.plan: ListenerPlan = plan_listeners(settings, self.is_replica)
        self.private = PrivateFolder(private_folder) if private_folder is not None else None
        # A replica relays management calls (gRPC) and the routes only the primary
        # answers (HTTP) to the primary's private sockets.
        self._relay = (
            ManagementRelay(self.private.management_address, settings.server.max_message_bytes)
            if self.plan.relays_management and self.private is not None
            else None
        )
        relays = self._relay is not None
        self.primary = PrimaryLink(self.private.http) if self.private is not None else None
        self.info = GatewayInfo(settings.effective_gateway_id, __version__)
        self.health = HealthReporter(self.models, [INFERENCE_SERVICE, MODEL_SERVICE, V2_SERVICE])
        self.http_listeners = HttpListeners(
            settings,
            http_routes(self._http_face(relays)),
            self.metrics.http_refused.inc,
            worker_index,
        )
        self.shared_memory = SharedMemoryRegistry(settings.server.shared_memory_max_regions)
        self.workers: WorkerSupervisor | None = None
        self.grpc = GrpcListeners(
            settings,
            self.plan,
            GrpcServing(
                self.parts,
                self.info,
                self.health,
                self.shared_memory,
                self._repository,
                self.is_ready,
            ),
            self.is_replica,
            self._relay,
            self._replicas_followed if self.several else None,
        )
        self._load_task: asyncio.Task[None] | None = None
        self.grpc_port = 0
        self.management_port = 0

    def is_ready(self) -> bool:
        return self.models.any_ready() and not self.info.shutting_down

    @property
    def load_task(self) -> asyncio.Task[None]:
        assert self._load_task is not None, "start() first"
        return self._load_task

    @property
    def http(self) -> HttpEndpoint:
        """The public HTTP endpoint."""
        return self.http_listeners.public

    async def render_metrics(self) -> bytes:
        """This process's metrics, or every worker's labelled by ``worker`` (on a
        replica: the primary's page, which is that)."""
        if self.primary is not None:
            return await self.primary.metrics()
        own = self.metrics.render()
        if self.workers is None:
            return own
        return merge_expositions([("0", own), *await self.workers.metrics_pages()])

    # -- start ---------------------------------------------------------------------------

    def start_sequence(self) -> tuple[Step, ...]:
        """What this process starts, in order (health reports loading until models serve)."""
        return (
            # The kernel would otherwise hand a replica connections it can only answer
            # "loading": it joins the shared port once its models serve.
            # Before any request: blocks freed after a flood go back to the system.
            Step("allocator: fixed glibc mmap threshold", self._configure_allocator),
            Step("open-files limit", self._raise_open_files),
            Step("load models before joining the shared ports", self._load_first, self.is_replica),
            Step("gRPC listener: inference, V2, health, reflection", self._start_main),
            Step("gRPC management listener", self._start_management, self.plan.separate_management),
            Step("HTTP listener: REST, V2 REST, /metrics, /healthz", self._start_http),
            Step(
                "own /metrics on a private socket, for the primary",
                self._start_own_metrics,
                self.is_replica and self.private is not None,
            ),
            Step("model discovery, health reporting", self._start_health),
            Step("model load in the background", self._start_load, not self.is_replica),
            Step("cloud link: pull mode, feedback upload", self._start_cloud, bool(self.cloud)),
            Step(
                "private sockets the workers relay to: gRPC management, HTTP /metrics and "
                "management",
                self._start_private,
                self.several,
            ),
            Step("worker processes", self._start_workers, self.several),
        )

    async def start(self) -> None:
        """Run the start sequence; a listener that cannot bind raises StartupError after
        closing whatever had started, so the process ends with one line and nothing left
        running."""
        try:
            for step in self.start_sequence():
                if step.when:
                    logger.debug("starting: %s", step.name)
                    await step.run()
        except StartupError:
            await self.grpc.stop_created()
            if self.private is not None:
                self.private.remove()
            self.shared_memory.detach(remove=not self.is_replica)
            self.parts.preprocess_pool.shutdown(wait=False, cancel_futures=True)
            self.parts.inference_pool.shutdown(wait=False, cancel_futures=True)
            raise
        self._log_listening()

    async def _configure_allocator(self) -> None:
        allocator.configure()

    async def _raise_open_files(self) -> None:
        limit = raise_open_files_limit()
        self.metrics.track_descriptors(
            limit.soft, lambda: self.http.connections, self.http.max_connections
        )

    async def _load_first(self) -> None:
        self.models.discover()
        self._load_task = asyncio.create_task(self._load_models())
        await self._load_task

    def _repository(self) -> ModelRepository:
        lifecycle = self.lifecycle
        return ModelRepository(
            self.models,
            self.parts.statistics,
            lifecycle.activator.activate_on_disk if lifecycle else _primary_only,
            lambda: self.info.shutting_down,
            self.settings.lifecycle.pinned_versions,
        )

    def _http_face(self, relays: bool) -> HttpFace:
        """The HTTP routes' collaborators: the gRPC servicers' own (one domain, two faces);
        ``relays``: a replica relays the management routes to the primary."""
        return HttpFace(
            self.predictor,
            self.models,
            self._repository(),
            self.metrics,
            self.info,
            self.render_metrics,
            self.is_ready,
            self.settings.effective_management_token,
            repository_writes=self.plan.v2_writes_on_main,
            primary=self.primary if relays else None,
            replicas_followed=self._replicas_followed if self.several else None,
        )

    async def _start_main(self) -> None:
        s = self.settings.server
        self.grpc_port = self.grpc.bind_main()
        if s.shared_memory != "off":  # the primary starts the workers' shared state afresh
            self.shared_memory.attach(
                state_file_for(s.host, self.grpc_port), fresh=not self.is_replica
            )
        await self.grpc.start_main()
        self.management_port = self.grpc_port if MODEL_SERVICE in self.plan.main else -1

    async def _start_private(self) -> None:
        self.private = PrivateFolder()
        logger.info("the workers' private sockets are in %s", self.private.path)
        if self.plan.private_management:
            await self.grpc.start_private(self.private.management_address)
        await self.http_listeners.start_primary_private(self.private)

    async def _start_own_metrics(self) -> None:
        assert self.private is not None

        async def own() -> bytes:
            return self.metrics.render()

        await self.http_listeners.start_replica_private(self.private, own)

    async def _start_management(self) -> None:
        self.management_port = await self.grpc.start_management()

    async def _start_http(self) -> None:
        await self.http_listeners.start_public()

    async def _start_health(self) -> None:
        if not self.is_replica:  # a replica discovered its models before binding
            self.models.discover()
        await self.health.start()

    async def _start_load(self) -> None:
        self._load_task = asyncio.create_task(self._load_models())

    async def _start_cloud(self) -> None:
        assert self.cloud is not None
        await self.cloud.start(self.wait_for_models)

    async def _start_workers(self) -> None:
        assert self.private is not None
        self.workers = WorkerSupervisor(
            self.settings, (self.grpc_port, self.http.port), self.models, self.private
        )
        await self.workers.start()

    def _log_listening(self) -> None:
        s = self.settings.server
        logger.info(
            "gateway %s listening: gRPC %s:%d%s, HTTP %s:%d; management on port %d; models from %s",
            self.info.gateway_id,
            s.host,
            self.grpc_port,
            " (TLS)" if s.tls_cert else "",
            s.host,
            self.http.port,
            self.management_port,
            s.model_root,
        )

    async def _replicas_followed(self) -> None:
        if self.workers is not None:
            await self.workers.wait_followed()

    async def _load_models(self) -> None:
        await self.models.load_all()
        failed = [slot.name for slot in self.models.slots() if slot.last_error]
        if failed:
            logger.warning("models that failed to load: %s (see Health)", ", ".join(failed))
        if not self.models.slots():
            logger.warning(
                "no models under %s: nothing to serve yet", self.settings.server.model_root
            )

    async def wait_for_models(self) -> None:
        if self._load_task is not None:
            await asyncio.shield(self._load_task)

    # -- stop ----------------------------------------------------------------------------

    def stop_sequence(self) -> tuple[Step, ...]:
        """What SIGTERM does, in order."""
        return (
            Step("health says NOT_SERVING", self.health.shutting_down),
            Step("no automatic rollback from now on", self._stop_watcher, bool(self.lifecycle)),
            Step("refuse new calls, let in-flight ones finish (listeners, workers)", self._drain),
            Step("stop loading models", self._cancel_load),
            # After the drain: the last results reach the outbox.
            Step("cloud link: last status and results", self._stop_cloud, bool(self.cloud)),
            Step("HTTP listeners", self.http_listeners.stop),
            Step("shared memory and thread pools", self._release),
        )

    async def _stop_watcher(self) -> None:
        assert self.lifecycle is not None
        await self.lifecycle.watcher.stop()

    async def _drain(self) -> None:
        grace = self.settings.server.shutdown_grace_seconds
        draining = [srv.stop(grace) for srv in self.grpc.running()]
        if self.workers is not None:  # the replicas drain their own calls meanwhile
            draining.append(self.workers.stop(grace))
        await asyncio.gather(*draining)

    async def _cancel_load(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()

    async def _stop_cloud(self) -> None:
        assert self.cloud is not None
        await self.cloud.stop()

    async def _release(self) -> None:
        if self._relay is not None:
            await self._relay.close()
        if self.primary is not None:
            await self.primary.close()
        if self.private is not None:
            self.private.remove()
        self.shared_memory.detach(remove=not self.is_replica)
        self.parts.preprocess_pool.shutdown(wait=False, cancel_futures=True)
        self.parts.inference_pool.shutdown(wait=True, cancel_futures=True)

    async def stop(self) -> None:
        """NOT_SERVING first, refuse new calls, let in-flight ones finish, then release."""
        grace = self.settings.server.shutdown_grace_seconds
        logger.info("shutting down: draining in-flight calls for up to %.1f s", grace)
        self.info.shutting_down = True
        for step in self.stop_sequence():
            if step.when:
                logger.debug("stopping: %s", step.name)
                await step.run()
        logger.info("gateway stopped")

    async def wait_for_termination(self) -> None:
        if self.grpc.main is not None:
            await self.grpc.main.wait_for_termination()
