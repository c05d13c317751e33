"""Each pull gateway's own credential on OrchestratorService.

``GatewayGuard`` is the one check every servicer method makes first (inside its
``@rpc_boundary``, so refusals go through the status table): the call's
``authorization: Bearer <gateway secret>`` must belong to the gateway id the request
names, that gateway must be admitted (cloud_orchestrator/fleet/identity.py), and it
must be within its rate limit and storage quotas (cloud_orchestrator/fleet/limits.py).
``Enroll`` is the only method that takes no gateway secret: it is how a gateway gets one.

``recheck_on_heartbeat`` ends an open Subscribe stream of a gateway revoked since it
subscribed: before each heartbeat the credential is looked up in ``AdmittedSet``, every
admitted (id, secret digest) pair, shared by all streams of this process and reread only
when a one-row aggregate of the identities (checked at most every ``RECHECK_SECONDS``)
moved (one read per gateway per heartbeat would be 1,000 queries a second for 10,000
idle gateways). Only a credential missing from the set is checked again in full, which
gives the precise refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, cast

import grpc
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import CredentialRefused, NotFound, Unauthenticated
from cloud_orchestrator.fleet.desired import DesiredVersion
from cloud_orchestrator.fleet.identity import (
    ADMITTED,
    OPEN_ID,
    Enrolled,
    Identities,
    check_gateway_id,
    secret_digest,
)
from cloud_orchestrator.fleet.limits import RateLimiter, UsageLedger
from cloud_orchestrator.fleet.store import Fleet
from cloud_orchestrator.grpc import converters
from cloud_orchestrator.grpc.credential_checks import CredentialChecks
from edge_contracts.proto.edge.v1 import orchestrator_pb2

__all__ = ["GatewayGuard", "recheck_on_heartbeat"]

logger = logging.getLogger(__name__)

_BEARER = "bearer "
RECHECK_SECONDS = 2.0


def _secret(context: grpc.aio.ServicerContext, method: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key != "authorization" or not isinstance(value, str):
            continue
        secret = value[len(_BEARER) :].strip()
        if value[: len(_BEARER)].lower() == _BEARER and secret:
            return secret
    raise Unauthenticated(
        f"{method}: send metadata 'authorization: Bearer <gateway secret>'; a gateway gets "
        "its secret by enrolling (edge-server --orchestrator-enrollment-token-file)"
    )


class AdmittedSet:
    """The admitted credentials, checked for changes when older than ``max_age`` (one
    small aggregate query for all the streams that ask meanwhile) and reread only when
    the identities changed: rereading 10,000 pairs every 2 s was a third of an idle
    orchestrator's CPU."""

    def __init__(self, identities: Identities, max_age: float = RECHECK_SECONDS) -> None:
        self._identities = identities
        self._max_age = max_age
        self._pairs: frozenset[tuple[str, str]] = frozenset()
        self._fingerprint: tuple[float, int] | None = None
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()
        self.rereads = 0

    async def contains(self, gateway_id: str, digest: str) -> bool:
        if time.monotonic() - self._read_at > self._max_age:
            async with self._lock:
                if time.monotonic() - self._read_at > self._max_age:
                    await asyncio.to_thread(self._refresh)
                    self._read_at = time.monotonic()
        return (gateway_id, digest) in self._pairs

    def _refresh(self) -> None:
        fingerprint = self._identities.fingerprint()
        if fingerprint != self._fingerprint:
            # Read after the fingerprint: a change between the two is caught next time.
            self._pairs = self._identities.admitted_pairs()
            self._fingerprint = fingerprint
            self.rereads += 1


class GatewayGuard:
    def __init__(
        self,
        identities: Identities,
        fleet: Fleet,
        limiter: RateLimiter,
        usage: UsageLedger,
        enroll_limiter: RateLimiter | None = None,
    ) -> None:
        self.identities = identities
        self._fleet = fleet
        self._limiter = limiter
        self._usage = usage
        self._enroll_limiter = enroll_limiter or limiter
        self._admitted = AdmittedSet(identities)
        self._checks = CredentialChecks(identities)

    async def caller(
        self,
        context: grpc.aio.ServicerContext,
        gateway_id: str | None,
        method: str,
        rate_limited: bool = True,
    ) -> str:
        """The admitted gateway id behind this call's credential, which must be
        ``gateway_id`` (None: whichever gateway it is, for streams that name it later)."""
        if gateway_id is not None:
            check_gateway_id(gateway_id)
        secret = _secret(context, method)
        try:
            info = await self._checks.authorize(secret, gateway_id)
        except (Unauthenticated, CredentialRefused) as exc:
            logger.warning("refused %s for %r: %s", method, (gateway_id or "")[:64], exc)
            raise
        if rate_limited:
            self._limiter.take(info.gateway_id, method)
        return info.gateway_id

    def stream_digest(self, context: grpc.aio.ServicerContext) -> str:
        """The digest of a stream's credential, computed once per stream (reading the
        call's metadata costs more than the check it feeds)."""
        return secret_digest(_secret(context, "Subscribe"))

    async def still_admitted(
        self, context: grpc.aio.ServicerContext, gateway_id: str, digest: str
    ) -> None:
        """A stream's credential, checked again cheaply; refused as ``caller`` refuses."""
        if not await self._admitted.contains(gateway_id, digest):
            await self.caller(context, gateway_id, "Subscribe", rate_limited=False)

    async def subscribe(
        self, context: grpc.aio.ServicerContext, request: orchestrator_pb2.SubscribeRequest
    ) -> str:
        gateway_id = await self.caller(context, request.gateway_id, "Subscribe")
        converters.check_subscribe(request)
        return gateway_id

    async def fetch(
        self,
        context: grpc.aio.ServicerContext,
        request: orchestrator_pb2.FetchModelRequest,
        desired_of: Callable[[str], Awaitable[list[DesiredVersion] | None]],
    ) -> str:
        """The caller, who may fetch only a version its desired state names: looked up in
        the streams' shared snapshot (``desired_of``, no query; 10,000 gateways fetch
        after one assign), and in the database only when the snapshot says no (it may be
        a moment behind another replica's change)."""
        gateway_id = await self.caller(context, request.gateway_id, "FetchModel")
        wanted = (request.model_name, request.model_version)
        cached = None
        with contextlib.suppress(Exception):  # no snapshot yet: the database decides
            cached = await desired_of(gateway_id)
        if cached and any((d.model_name, d.version) == wanted for d in cached):
            return gateway_id

        def assigned() -> bool:
            try:
                gateway = self._fleet.gateway(gateway_id)
            except NotFound:  # enrolled, never subscribed: nothing is assigned to it
                return False
            return any((d.model_name, d.version) == wanted for d in self._fleet.desired(gateway))

        if not await asyncio.to_thread(assigned):
            raise CredentialRefused(
                f"{request.model_name[:128]} version {request.model_version[:128]} is not in "
                f"the desired state of gateway {gateway_id}; a gateway fetches only the "
                "versions assigned to it"
            )
        return gateway_id

    async def report_status(
        self, context: grpc.aio.ServicerContext, request: orchestrator_pb2.ReportStatusRequest
    ) -> str:
        gateway_id = await self.caller(context, request.gateway_id, "ReportStatus")
        converters.to_reported_models(request.models)
        converters.to_reported_events(request.events)
        return gateway_id

    def charge_in(
        self, session: Session, gateway_id: str, result_bytes: int = 0, events: int = 0
    ) -> None:
        """The daily quotas, charged in the transaction of the write they pay for."""
        self._usage.charge_in(session, gateway_id, result_bytes, events)

    async def enroll(
        self, context: grpc.aio.ServicerContext, request: orchestrator_pb2.EnrollRequest
    ) -> Enrolled:
        check_gateway_id(request.gateway_id)
        converters.check_text("gateway_version", request.gateway_version, 64)
        grant = await asyncio.to_thread(self.identities.grant, request.enrollment_token)
        # Per enrollment token: a leaked fleet-wide token registers ids slowly, not by
        # the hundred per second.
        self._enroll_limiter.take(f"enrollment token {grant.token_id}", "Enroll")
        enrolled = await asyncio.to_thread(self.identities.enroll, grant, request.gateway_id)
        if enrolled.state == ADMITTED:
            await asyncio.to_thread(self.admitted, enrolled.gateway_id, request.gateway_version)
        if grant.token_id == OPEN_ID:
            logger.warning(
                "gateway %s enrolled without an enrollment token (open enrollment: there is no "
                "--gateway-token-file and no enrollment token; `edge-orchestrator "
                "enrollment-tokens create` ends it)",
                enrolled.gateway_id,
            )
        else:
            logger.info(
                "gateway %s enrolled with %s: %s",
                enrolled.gateway_id,
                grant.token_id,
                enrolled.state,
            )
        return enrolled

    def admitted(self, gateway_id: str, gateway_version: str = "") -> None:
        """Put an admitted gateway in the fleet inventory, with its token's labels."""
        labels = self.identities.token_labels(gateway_id)
        self._fleet.hello(gateway_id, labels, gateway_version)


class _Guarded(Protocol):
    guard: GatewayGuard


def recheck_on_heartbeat(method: Callable[..., AsyncIterator[Any]]) -> Any:
    """Wrap a Subscribe method: before each heartbeat leaves, the caller's credential
    is checked again, so a revoked gateway's stream ends with PERMISSION_DENIED."""

    @functools.wraps(method)
    async def stream(
        self: _Guarded, request: orchestrator_pb2.SubscribeRequest, context: Any
    ) -> AsyncIterator[Any]:
        # An async generator method (the Subscribe stream), closed here when we stop.
        responses = cast(AsyncGenerator[Any, None], method(self, request, context))
        digest = ""
        try:
            async for response in responses:
                # bytes: a desired state encoded once for many streams, never a heartbeat
                if not isinstance(response, bytes) and response.HasField("heartbeat"):
                    digest = digest or self.guard.stream_digest(context)
                    await self.guard.still_admitted(context, request.gateway_id, digest)
                yield response
        finally:
            await responses.aclose()

    return stream
