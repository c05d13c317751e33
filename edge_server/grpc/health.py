"""Standard grpc.health.v1 (Check and Watch), kept in step with the models.

Service names: "" (the gateway as a whole), each gRPC service name, and
"models/<name>" per model. Everything is NOT_SERVING until a model is ready and
again once shutdown starts.
"""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from edge_server.catalogue.serving import ModelSlot, ModelState, ServingCatalogue

logger = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def model_service_name(model: str) -> str:
    return f"models/{model}"


class HealthReporter:
    """Owns the aio HealthServicer and updates it from model state changes."""

    def __init__(self, models: ServingCatalogue, service_names: list[str]) -> None:
        self.servicer = health.aio.HealthServicer()
        self._models = models
        self._service_names = service_names
        self._shutting_down = False
        self._pending: set[asyncio.Task[None]] = set()
        models.add_listener(self._on_model_state)

    async def start(self) -> None:
        """Publish the initial (NOT_SERVING) state for every name."""
        for name in ["", *self._service_names]:
            await self.servicer.set(name, NOT_SERVING)
        for slot in self._models.slots():
            await self.servicer.set(model_service_name(slot.name), NOT_SERVING)
        await self.refresh()

    async def refresh(self) -> None:
        if self._shutting_down:
            return
        overall = SERVING if self._models.any_ready() else NOT_SERVING
        for name in ["", *self._service_names]:
            await self.servicer.set(name, overall)
        for slot in self._models.slots():
            ready = slot.state is ModelState.READY and slot.active is not None
            await self.servicer.set(
                model_service_name(slot.name), SERVING if ready else NOT_SERVING
            )

    def _on_model_state(self, slot: ModelSlot) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.refresh())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def shutting_down(self) -> None:
        """Every name goes NOT_SERVING and stays there (Watchers see it at once)."""
        self._shutting_down = True
        await self.servicer.enter_graceful_shutdown()
