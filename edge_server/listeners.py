"""Which gRPC services each listener of a gateway process serves, as data.

- primary, management shared (the default): --grpc-port serves InferenceService,
  V2 (all of it), Health and ModelService.
- primary with ``--management-port`` >= 0: --grpc-port serves InferenceService, V2
  (repository read-only) and Health; the management port serves ModelService, V2's
  repository load/unload and Health.
- replica (``--workers`` > 1, index > 0): --grpc-port (shared) serves InferenceService,
  V2 and Health; with a ``--management-port`` management is the primary's port alone,
  without one the replica relays ModelService and V2's repository load/unload to the
  primary (edge_server/workers/management_relay.py), so management answers on every
  connection to the shared port.
- primary of several workers with management shared: as "management shared" above, plus
  a private unix socket serving the management calls its replicas relay.

Every gRPC listener also answers reflection for the services it serves. HTTP is one more
listener, on every process (edge_server/http_listeners.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2
from edge_contracts.proto.inference import grpc_service_pb2
from edge_server.settings import Settings

INFERENCE_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name
MODEL_SERVICE = model_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
HEALTH_SERVICE = "grpc.health.v1.Health"
V2_SERVICE = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
# Only V2's repository calls (load, unload) on the management listener, not inference.
V2_REPOSITORY = V2_SERVICE + " (repository)"


@dataclass(frozen=True)
class ListenerPlan:
    """Services per gRPC listener; an empty ``management`` means no second listener."""

    main: tuple[str, ...]
    management: tuple[str, ...]
    # The primary's private socket for the calls replicas relay (empty: none).
    private_management: tuple[str, ...] = ()
    # A replica relays the management calls it receives to the primary's private socket.
    relays_management: bool = False

    @property
    def separate_management(self) -> bool:
        return bool(self.management)

    @property
    def v2_writes_on_main(self) -> bool:
        """V2 load/unload are management: allowed on the main port only when it is shared."""
        return MODEL_SERVICE in self.main


def plan_listeners(settings: Settings, is_replica: bool) -> ListenerPlan:
    serving = (INFERENCE_SERVICE, V2_SERVICE, HEALTH_SERVICE)
    management = (MODEL_SERVICE, V2_REPOSITORY, HEALTH_SERVICE)
    shared = settings.server.management_port < 0
    if is_replica:
        return ListenerPlan(serving, (), relays_management=shared)
    if not shared:
        return ListenerPlan(serving, management)
    private = management if settings.effective_workers > 1 else ()
    return ListenerPlan((*serving, MODEL_SERVICE), (), private_management=private)


def reflected_on_main(plan: ListenerPlan) -> list[str]:
    """What reflection lists on the main port: a relaying replica answers management too."""
    return reflected((*plan.main, MODEL_SERVICE) if plan.relays_management else plan.main)


def reflected(services: tuple[str, ...]) -> list[str]:
    """Service names reflection lists (V2's repository slice is part of V2)."""
    names = [V2_SERVICE if name == V2_REPOSITORY else name for name in services]
    return list(dict.fromkeys(names))
