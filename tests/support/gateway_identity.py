"""A pull gateway's credential for tests that call OrchestratorService themselves.

Every call but Enroll must carry the secret of the gateway id it names
(cloud_orchestrator/grpc/auth.py): enroll first (no token is needed on an orchestrator
that has no enrollment token and no --gateway-token-file), then send the metadata.
Many gateways enrolling with one token meet `serve --enroll-rate-per-second`.
"""

from __future__ import annotations

from typing import Any

from edge_contracts.proto.edge.v1 import orchestrator_pb2

Metadata = tuple[tuple[str, str], ...]


def _request(gateway_id: str, token: str) -> orchestrator_pb2.EnrollRequest:
    return orchestrator_pb2.EnrollRequest(gateway_id=gateway_id, enrollment_token=token)


def _metadata(reply: orchestrator_pb2.EnrollResponse) -> Metadata:
    return (("authorization", f"Bearer {reply.gateway_secret}"),)


def enroll(stub: Any, gateway_id: str, token: str = "") -> Metadata:
    """With a blocking OrchestratorServiceStub."""
    return _metadata(stub.Enroll(_request(gateway_id, token), timeout=10))


async def enroll_async(stub: Any, gateway_id: str, token: str = "") -> Metadata:
    """With a grpc.aio OrchestratorServiceStub."""
    return _metadata(await stub.Enroll(_request(gateway_id, token), timeout=10))
