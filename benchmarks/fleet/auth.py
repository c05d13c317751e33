"""How a simulated gateway proves who it is: one pluggable step before every call.

``BearerToken``: a fleet-wide bearer token on every call (orchestrators before
per-gateway identity). ``Enrolled``: the gateway trades the enrollment token for its own
secret with the Enroll RPC once (protos/edge/v1/orchestrator.proto), then sends that
secret (cloud_orchestrator/grpc/auth.py checks it against the gateway id).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import grpc

from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc

__all__ = ["BearerToken", "Enrolled", "GatewayAuth", "Metadata", "auth_from_spec"]

Metadata = tuple[tuple[str, str], ...]


class GatewayAuth(Protocol):
    async def metadata(self, gateway_id: str, channel: grpc.aio.Channel) -> Metadata:
        """Call metadata for ``gateway_id`` (may make calls on ``channel`` the first time)."""
        ...

    def forget(self, gateway_id: str) -> None:
        """Drop a cached credential (called when a call was refused as UNAUTHENTICATED)."""
        ...


class BearerToken:
    """The fleet token every gateway sends (edge-server --orchestrator-token)."""

    def __init__(self, token: str) -> None:
        self._metadata: Metadata = (("authorization", f"Bearer {token}"),) if token else ()

    async def metadata(self, gateway_id: str, channel: grpc.aio.Channel) -> Metadata:
        return self._metadata

    def forget(self, gateway_id: str) -> None:
        return None


class Enrolled:
    """Each gateway enrolls once with ``enrollment_token`` and sends its own secret."""

    def __init__(self, enrollment_token: str) -> None:
        self._token = enrollment_token
        self._secrets: dict[str, asyncio.Task[Metadata]] = {}

    async def _enroll(self, gateway_id: str, channel: grpc.aio.Channel) -> Metadata:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        request = orchestrator_pb2.EnrollRequest(
            gateway_id=gateway_id, enrollment_token=self._token, gateway_version="fleet-sim"
        )
        reply = await stub.Enroll(request, timeout=30)
        return (("authorization", f"Bearer {reply.gateway_secret}"),)

    async def metadata(self, gateway_id: str, channel: grpc.aio.Channel) -> Metadata:
        task = self._secrets.get(gateway_id)
        if task is None or (task.done() and task.exception() is not None):
            task = self._secrets[gateway_id] = asyncio.create_task(
                self._enroll(gateway_id, channel)
            )
        return await asyncio.shield(task)

    def forget(self, gateway_id: str) -> None:
        return None  # an enrolled id is refused a second enrollment: keep the secret


def auth_from_spec(spec: str) -> GatewayAuth:
    """``token:VALUE`` (or a bare token), ``enroll:TOKEN`` -> the auth step."""
    if spec.startswith("enroll:"):
        return Enrolled(spec.removeprefix("enroll:"))
    if spec.startswith("token:"):
        return BearerToken(spec.removeprefix("token:"))
    return BearerToken(spec)
