"""How a simulated gateway proves who it is: one pluggable step before every call.

Today the orchestrator takes a fleet-wide bearer token (cloud_orchestrator/grpc/auth.py,
`serve --gateway-token-file`). Per-gateway identity (an enrolment call that hands each
gateway its own credential) fits the same shape: ``metadata`` would enrol once per
gateway through ``channel``, cache what it got, and return that gateway's metadata.
"""

from __future__ import annotations

from typing import Protocol

import grpc

__all__ = ["BearerToken", "GatewayAuth", "Metadata", "auth_from_spec"]

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


def auth_from_spec(spec: str) -> GatewayAuth:
    """``token:VALUE`` (or a bare token) -> the auth step; new schemes get a prefix here."""
    if spec.startswith("token:"):
        return BearerToken(spec.removeprefix("token:"))
    return BearerToken(spec)
