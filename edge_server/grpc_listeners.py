"""A gateway process's gRPC servers: which servicers and interceptors each one gets.

Which services each listener serves is decided by edge_server/listeners.py (data);
this module builds the servers that plan describes (the main port, the management
port, the primary's private management socket), binds and starts them, and drains
them on stop. edge_server/app.py says when.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2_grpc

from edge_contracts.proto.edge.v1 import inference_pb2_grpc, model_pb2_grpc
from edge_contracts.proto.inference import grpc_service_pb2_grpc
from edge_server.assembly import GatewayParts
from edge_server.gateway_info import GatewayInfo
from edge_server.grpc.auth import ManagementAuthInterceptor
from edge_server.grpc.health import HealthReporter
from edge_server.grpc.inference_servicer import InferenceServicer
from edge_server.grpc.model_servicer import ModelServicer
from edge_server.grpc.reflection import enable_reflection
from edge_server.grpc.servers import bind, new_server
from edge_server.grpc.shared_memory_access import SharedMemoryAccess
from edge_server.grpc.v2_servicer import V2Servicer, repository_handler
from edge_server.listeners import MODEL_SERVICE, ListenerPlan, reflected, reflected_on_main
from edge_server.settings import Settings
from edge_server.v2.model_repository import ModelRepository
from edge_server.v2.shared_memory import SharedMemoryRegistry
from edge_server.v2.tensor_inference import TensorInference
from edge_server.workers.follow_barrier import FollowBarrier
from edge_server.workers.management_relay import ManagementRelay

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GrpcServing:
    """What the servicers serve with: the process's parts, and the gateway's own state."""

    parts: GatewayParts
    info: GatewayInfo
    health: HealthReporter
    shared_memory: SharedMemoryRegistry
    repository: Callable[[], ModelRepository]
    is_ready: Callable[[], bool]


class GrpcListeners:
    """The gRPC servers of one process, built from its ``ListenerPlan``.

    ``is_replica``: it joins the primary's port and has no management of its own;
    ``relay``: a replica's interceptor sending management calls to the primary;
    ``replicas_followed``: on a primary of several workers, what a management answer
    waits for (edge_server/workers/follow_barrier.py).
    """

    def __init__(
        self,
        settings: Settings,
        plan: ListenerPlan,
        serving: GrpcServing,
        is_replica: bool,
        relay: ManagementRelay | None,
        replicas_followed: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self._settings = settings
        self._plan = plan
        self._serving = serving
        self._relay = relay
        self._replicas_followed = replicas_followed
        self._is_replica = is_replica
        self._warned_open_management = is_replica  # a replica has no management
        self.main: grpc.aio.Server | None = None
        self.management: grpc.aio.Server | None = None
        self.private: grpc.aio.Server | None = None
        self._created: list[grpc.aio.Server] = []  # stopped if the start fails

    # -- the three listeners -----------------------------------------------------------

    def bind_main(self) -> int:
        """InferenceService, V2, Health (and ModelService when management is shared) on
        --grpc-port; returns the port bound (``start_main`` then serves it)."""
        s = self._settings.server
        serving = self._serving
        server = self._new_server()
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(
            InferenceServicer(
                serving.parts.predictor, serving.parts.models, serving.parts.metrics, serving.info
            ),
            server,
        )
        health_pb2_grpc.add_HealthServicer_to_server(serving.health.servicer, server)
        grpc_service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            self._v2_servicer(repository_writes=self._plan.v2_writes_on_main), server
        )
        if MODEL_SERVICE in self._plan.main:
            model_pb2_grpc.add_ModelServiceServicer_to_server(self._model_servicer(), server)
        enable_reflection(server, reflected_on_main(self._plan))
        port = bind(
            server,
            self._settings,
            (s.host, s.grpc_port),
            ("--grpc-port", "--host"),
            self._is_replica,
        )
        self.main = server
        return port

    async def start_main(self) -> None:
        assert self.main is not None, "bind_main() first"
        await self.main.start()

    async def start_management(self) -> int:
        """The --management-port listener; returns the port bound."""
        s = self._settings.server
        management = self._new_management_server(self._plan.management)
        port = bind(
            management,
            self._settings,
            (s.management_host or s.host, s.management_port),
            ("--management-port", "--management-host"),
            shared_port=False,
        )
        await management.start()
        self.management = management
        return port

    async def start_private(self, address: str) -> None:
        """The management calls the replicas relay, on the primary's private socket.
        No TLS on it: the folder is 0700 and the replicas checked the caller already."""
        server = self._new_management_server(self._plan.private_management)
        server.add_insecure_port(address)
        await server.start()
        self.private = server
        logger.info("workers relay management calls to %s", address)

    def running(self) -> list[grpc.aio.Server]:
        return [srv for srv in (self.main, self.management, self.private) if srv is not None]

    async def stop_created(self) -> None:
        """After a failed start: every server made so far, at once."""
        for server in self._created:
            await server.stop(None)

    # -- servicers and interceptors ----------------------------------------------------

    def _new_management_server(self, services: tuple[str, ...]) -> grpc.aio.Server:
        management = self._new_server()
        model_pb2_grpc.add_ModelServiceServicer_to_server(self._model_servicer(), management)
        management.add_generic_rpc_handlers(
            (repository_handler(self._v2_servicer(repository_writes=True)),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._serving.health.servicer, management)
        enable_reflection(management, reflected(services))
        return management

    def _v2_servicer(self, repository_writes: bool) -> V2Servicer:
        serving = self._serving
        return V2Servicer(
            TensorInference(serving.parts.predictor),
            serving.repository(),
            serving.parts.metrics,
            serving.info,
            serving.is_ready,
            SharedMemoryAccess.from_settings(serving.shared_memory, self._settings),
            repository_writes=repository_writes,
        )

    def _model_servicer(self) -> ModelServicer:
        parts = self._serving.parts
        lifecycle = parts.lifecycle
        assert lifecycle is not None and parts.shadow is not None
        return ModelServicer(
            parts.models,
            lifecycle.activator,
            lifecycle.updater,
            lifecycle.ledger,
            parts.shadow,
            self._settings.lifecycle.update_idle_timeout_seconds,
        )

    def _new_server(self) -> grpc.aio.Server:
        server = new_server(self._settings, [*self._auth(), *self._workers()])
        self._created.append(server)
        return server

    def _workers(self) -> list[grpc.aio.ServerInterceptor]:
        """A replica relays management; the primary of several answers it once followed."""
        if self._relay is not None:
            return [self._relay]
        if self._replicas_followed is not None:
            return [FollowBarrier(self._replicas_followed)]
        return []

    def _auth(self) -> list[grpc.aio.ServerInterceptor]:
        token = self._settings.effective_management_token
        metrics = self._serving.parts.metrics
        if token:
            return [
                ManagementAuthInterceptor(
                    token, lambda _method, reason: metrics.auth_failures.labels(reason).inc()
                )
            ]
        if self._settings.server.tls_client_ca is None and not self._warned_open_management:
            self._warned_open_management = True
            logger.warning(
                "no --management-token and no mTLS: management calls (ModelService) are open "
                "to anyone who can reach the gateway"
            )
        return []
