"""Which gRPC services each listener of a gateway process serves, as data.

- primary, management shared (the default): --grpc-port serves InferenceService,
  V2 (all of it), Health and ModelService.
- primary with ``--management-port`` >= 0: --grpc-port serves InferenceService, V2
  (repository read-only) and Health; the management port serves ModelService, V2's
  repository load/unload and Health.
- replica (``--workers`` > 1, index > 0): --grpc-port (shared) serves InferenceService,
  V2 (repository read-only) and Health; management is the primary's.

Every gRPC listener also answers reflection for the services it serves. HTTP (``/metrics``,
``/healthz``) is one more listener, on loopback for a replica (the primary scrapes it).
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

    @property
    def separate_management(self) -> bool:
        return bool(self.management)

    @property
    def v2_writes_on_main(self) -> bool:
        """V2 load/unload are management: allowed on the main port only when it is shared."""
        return MODEL_SERVICE in self.main


def plan_listeners(settings: Settings, is_replica: bool) -> ListenerPlan:
    serving = (INFERENCE_SERVICE, V2_SERVICE, HEALTH_SERVICE)
    if is_replica:
        return ListenerPlan(serving, ())
    if settings.server.management_port >= 0:
        return ListenerPlan(serving, (MODEL_SERVICE, V2_REPOSITORY, HEALTH_SERVICE))
    return ListenerPlan((*serving, MODEL_SERVICE), ())


def reflected(services: tuple[str, ...]) -> list[str]:
    """Service names reflection lists (V2's repository slice is part of V2)."""
    names = [V2_SERVICE if name == V2_REPOSITORY else name for name in services]
    return list(dict.fromkeys(names))
