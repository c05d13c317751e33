"""Assemble the gateway from settings, start it, and shut it down in order."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2_grpc

from edge_contracts.cli.ports import listen_error, probe_bind
from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)
from edge_contracts.proto.inference import grpc_service_pb2, grpc_service_pb2_grpc
from edge_server import __version__
from edge_server.catalogue.on_disk import DiskCatalogue
from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.errors import ModelNotReady, StartupError
from edge_server.grpc.auth import ManagementAuthInterceptor
from edge_server.grpc.health import HealthReporter
from edge_server.grpc.inference_servicer import GatewayInfo, InferenceServicer
from edge_server.grpc.model_servicer import ModelServicer
from edge_server.grpc.reflection import enable_reflection
from edge_server.grpc.shared_memory_access import SharedMemoryAccess
from edge_server.grpc.v2_servicer import V2Servicer, repository_handler
from edge_server.http.server import HttpEndpoint
from edge_server.inference.predictor import BatchingDefaults, Predictor
from edge_server.lifecycle.assembly import Lifecycle
from edge_server.metrics import GatewayMetrics
from edge_server.pull.agent import CloudLink
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.runtime.priority import worker_pool
from edge_server.settings import Settings
from edge_server.v2.model_repository import ModelRepository
from edge_server.v2.shared_memory import SharedMemoryRegistry, state_file_for
from edge_server.v2.tensor_inference import TensorInference
from edge_server.workers.metrics_merge import merge_expositions
from edge_server.workers.supervisor import WorkerSupervisor

logger = logging.getLogger(__name__)

INFERENCE_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
MODEL_SERVICE = model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
HEALTH_SERVICE = "grpc.health.v1.Health"
V2_SERVICE = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


def _server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


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
        worker_pool(workers, "background", settings.worker_thread_nice)
    )


class Gateway:
    """The running gateway: gRPC server, HTTP endpoint, models and pools.

    ``worker_index`` 0 is the primary (the only process unless ``--workers`` > 1): it
    owns the model lifecycle and management. A replica (index > 0) serves inference
    on the shared port and follows the primary's models (see edge_server/workers).
    """

    def __init__(self, settings: Settings, worker_index: int = 0) -> None:
        self.settings = settings
        self.is_replica = worker_index > 0
        self.metrics = GatewayMetrics()
        session_config = SessionConfig(
            intra_op_threads=settings.effective_intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            graph_optimization=settings.graph_optimization,
            execution_providers=settings.execution_providers,
        )
        self.models = ServingCatalogue(
            DiskCatalogue(Path(settings.model_root)),
            functools.partial(LoadedSession, config=session_config),
            pinned_versions=dict(settings.pinned_versions),
            default_model=settings.default_model,
        )
        self.models.add_listener(self.metrics.on_model_state)
        nice = settings.worker_thread_nice
        self._preprocess_pool = worker_pool(
            settings.effective_preprocess_workers, "preprocess", nice
        )
        self._inference_pool = worker_pool(settings.effective_inference_workers, "inference", nice)
        self.predictor = Predictor(
            self.models,
            self._preprocess_pool,
            self._inference_pool,
            max_queue_size=settings.max_queue_size,
            max_image_pixels=settings.max_image_pixels,
            batching=BatchingDefaults(
                settings.batching, settings.max_batch_size, settings.max_queue_delay_us
            ),
            inference_workers=settings.effective_inference_workers,
            on_batch=self.metrics.observe_batch,
            inline_threshold_us=settings.inline_threshold_us,
        )
        self.metrics.track_queue_depth(self.models, self.predictor.queue_depth)
        # A replica never writes the model store: the primary's lifecycle does.
        self.lifecycle = (
            None if self.is_replica else Lifecycle.build(settings, self.models, self.predictor)
        )
        if self.lifecycle is not None:
            self.lifecycle.updater.on_rejected.append(
                lambda model, _reason: self.metrics.rejections.labels(model).inc()
            )
            self.lifecycle.activator.on_rolled_back.append(
                lambda model, _version, reason: self.metrics.rollbacks.labels(
                    model, "automatic" if reason.startswith("automatic") else "manual"
                ).inc()
            )
        self.info = GatewayInfo(settings.effective_gateway_id, __version__)
        self.health = HealthReporter(self.models, [INFERENCE_SERVICE, MODEL_SERVICE, V2_SERVICE])
        self.http = HttpEndpoint(self.render_metrics, self.is_ready)
        self.cloud = (  # pull mode and feedback upload (--orchestrator)
            CloudLink(settings, self.models, self.lifecycle, self.predictor, self.metrics.registry)
            if settings.orchestrator and self.lifecycle is not None
            else None
        )
        self.workers: WorkerSupervisor | None = None
        self._warned_open_management = self.is_replica  # a replica has no management
        self._server: grpc.aio.Server | None = None
        self._created_servers: list[grpc.aio.Server] = []  # stopped if start() fails
        self._management_server: grpc.aio.Server | None = None
        self.management_port = 0
        self._load_task: asyncio.Task[None] | None = None
        self.grpc_port = 0
        self.shared_memory = SharedMemoryRegistry(settings.shared_memory_max_regions)

    def is_ready(self) -> bool:
        return self.models.any_ready() and not self.info.shutting_down

    @property
    def load_task(self) -> asyncio.Task[None]:
        assert self._load_task is not None, "start() first"
        return self._load_task

    async def render_metrics(self) -> bytes:
        """This process's metrics, or every worker's labelled by ``worker``."""
        own = self.metrics.render()
        if self.workers is None:
            return own
        return merge_expositions([("0", own), *await self.workers.metrics_pages()])

    def _interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        s = self.settings
        token = s.effective_management_token
        if token:
            return [
                ManagementAuthInterceptor(
                    token, lambda _method, reason: self.metrics.auth_failures.labels(reason).inc()
                )
            ]
        if s.tls_client_ca is None and not self._warned_open_management:
            self._warned_open_management = True
            logger.warning(
                "no --management-token and no mTLS: management calls (ModelService) are open "
                "to anyone who can reach the gateway"
            )
        return []

    def _new_server(self) -> grpc.aio.Server:
        s = self.settings
        server = grpc.aio.server(
            interceptors=self._interceptors(),
            # Under overload the gRPC core refuses calls beyond this in C, immediately:
            # no per-call Python task, no request bytes buffered for a backlog.
            maximum_concurrent_rpcs=s.effective_max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
                # Several workers share the port; a lone gateway must not share it by accident.
                ("grpc.so_reuseport", 1 if s.effective_workers > 1 else 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        self._created_servers.append(server)
        return server

    def _bind(self, server: grpc.aio.Server, host: str, port: int, flags: tuple[str, str]) -> int:
        """Listen on ``host:port``; ``flags`` (port flag, host flag) name what to change."""
        credentials = _server_credentials(self.settings)
        address = f"{host}:{port}"
        # Ask first: a failed bind also makes the gRPC core print its own error line. A
        # replica skips this, as the port it shares (SO_REUSEPORT) is already held.
        refused = None if self.is_replica else probe_bind(host, port)
        if refused is not None:
            raise listen_error(host, port, *flags, refused)
        try:
            if credentials is None:
                return int(server.add_insecure_port(address))
            return int(server.add_secure_port(address, credentials))
        except RuntimeError:  # gRPC's "Failed to bind to address" says nothing more
            raise listen_error(host, port, *flags, probe_bind(host, port)) from None

    async def start(self) -> None:
        """Bind the ports, then load models in the background (health says when).

        A port that cannot be listened on raises StartupError after closing whatever
        had started, so the process ends with one line and nothing left running."""
        try:
            await self._start()
        except StartupError:
            for server in self._created_servers:
                await server.stop(None)
            self.shared_memory.detach(remove=not self.is_replica)
            self._preprocess_pool.shutdown(wait=False, cancel_futures=True)
            self._inference_pool.shutdown(wait=False, cancel_futures=True)
            raise

    async def _start(self) -> None:
        s = self.settings
        if self.is_replica:
            # A replica joins the shared port only once its models serve: the kernel
            # would otherwise hand it connections it can only answer "loading".
            self.models.discover()
            self._load_task = asyncio.create_task(self._load_models())
            await self._load_task
        server = self._new_server()
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(
            InferenceServicer(self.predictor, self.models, self.metrics, self.info), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        services = [INFERENCE_SERVICE, V2_SERVICE, HEALTH_SERVICE]
        lifecycle = self.lifecycle
        # Management: none on a replica, else on the shared port or on its own.
        management: grpc.aio.Server | None = None
        if lifecycle is not None:
            management = self._new_server() if s.management_port >= 0 else server
        v2_servicer = functools.partial(
            V2Servicer,
            TensorInference(self.predictor),
            ModelRepository(
                self.models,
                self.predictor.statistics,
                lifecycle.activator.activate_on_disk if lifecycle else _primary_only,
                lambda: self.info.shutting_down,
                s.pinned_versions,
            ),
            self.metrics,
            self.info,
            self.is_ready,
            SharedMemoryAccess(self.shared_memory, s.shared_memory),
        )
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            v2_servicer(repository_writes=management is server), server
        )
        if lifecycle is not None and management is not None:
            model_servicer = ModelServicer(
                self.models,
                lifecycle.activator,
                lifecycle.updater,
                lifecycle.ledger,
                lifecycle.shadow,
                s.update_idle_timeout_seconds,
            )
            model_pb2_grpc.add_ModelServiceServicer_to_server(model_servicer, management)
            if management is server:
                services.append(MODEL_SERVICE)
            else:
                management.add_generic_rpc_handlers((repository_handler(v2_servicer()),))
        enable_reflection(server, services)
        self.grpc_port = self._bind(server, s.host, s.grpc_port, ("--grpc-port", "--host"))
        if s.shared_memory != "off":  # the primary starts the workers' shared state afresh
            self.shared_memory.attach(
                state_file_for(s.host, self.grpc_port), fresh=not self.is_replica
            )
        await server.start()
        self._server = server
        if management is not None and management is not server:
            health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, management)
            enable_reflection(management, [MODEL_SERVICE, V2_SERVICE, HEALTH_SERVICE])
            self.management_port = self._bind(
                management,
                s.management_host or s.host,
                s.management_port,
                ("--management-port", "--management-host"),
            )
            await management.start()
            self._management_server = management
        else:
            self.management_port = self.grpc_port if management is server else -1
        # A replica's metrics are read by the primary over loopback only.
        http_host = "127.0.0.1" if self.is_replica else s.host
        try:
            await self.http.start(http_host, s.http_port)
        except OSError as exc:
            raise listen_error(http_host, s.http_port, "--http-port", "--host", exc.errno) from None
        if not self.is_replica:
            self.models.discover()
        await self.health.start()
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
        if self._load_task is None:  # a replica's load already ran before it bound
            self._load_task = asyncio.create_task(self._load_models())
        if self.cloud is not None:
            await self.cloud.start(self.wait_for_models)
        if not self.is_replica and s.effective_workers > 1:
            self.workers = WorkerSupervisor(s, self.grpc_port, self.models)
            await self.workers.start()

    async def _load_models(self) -> None:
        await self.models.load_all()
        failed = [slot.name for slot in self.models.slots() if slot.last_error]
        if failed:
            logger.warning("models that failed to load: %s (see Health)", ", ".join(failed))
        if not self.models.slots():
            logger.warning("no models under %s: nothing to serve yet", self.settings.model_root)

    async def wait_for_models(self) -> None:
        if self._load_task is not None:
            await asyncio.shield(self._load_task)

    async def stop(self) -> None:
        """NOT_SERVING first, refuse new calls, let in-flight ones finish, then release."""
        grace = self.settings.shutdown_grace_seconds
        logger.info("shutting down: draining in-flight calls for up to %.1f s", grace)
        self.info.shutting_down = True
        await self.health.shutting_down()
        if self.lifecycle is not None:
            await self.lifecycle.watcher.stop()
        servers = [srv for srv in (self._server, self._management_server) if srv is not None]
        draining = [srv.stop(grace) for srv in servers]
        if self.workers is not None:  # the replicas drain their own calls meanwhile
            draining.append(self.workers.stop(grace))
        await asyncio.gather(*draining)
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        if self.cloud is not None:
            await self.cloud.stop()  # after the drain: the last results reach the outbox
        await self.http.stop()
        self.shared_memory.detach(remove=not self.is_replica)
        self._preprocess_pool.shutdown(wait=False, cancel_futures=True)
        self._inference_pool.shutdown(wait=True, cancel_futures=True)
        logger.info("gateway stopped")

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
