"""edge.v1.OrchestratorService: thin conversions around the fleet, registry and
feedback store (database work runs in threads, never on the event loop)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator

import grpc
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import CredentialRefused, InvalidRequest, ReaderStalled
from cloud_orchestrator.feedback.store import BatchIn, FeedbackStore
from cloud_orchestrator.fleet.changes import DesiredStateHub
from cloud_orchestrator.fleet.desired import DesiredVersion
from cloud_orchestrator.fleet.presence import PresenceBuffer
from cloud_orchestrator.fleet.store import Fleet
from cloud_orchestrator.grpc import converters
from cloud_orchestrator.grpc.auth import GatewayGuard, recheck_on_heartbeat
from cloud_orchestrator.metrics import OrchestratorMetrics
from cloud_orchestrator.registry.fetch_budget import fetch_budget
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.rollouts.evidence_store import ShadowEvidenceStore
from cloud_orchestrator.storage.group_commit import GroupCommit
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from edge_contracts.rpc_boundary import rpc_boundary
from edge_contracts.shadow_evidence import evidence_from_proto

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
ENCODED_STATES_KEPT = 1024
MAX_BATCHES_PER_CALL = 256


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(
        self,
        fleet: Fleet,
        registry: Registry,
        feedback: FeedbackStore,
        hub: DesiredStateHub,
        presence: PresenceBuffer,
        heartbeat_seconds: float = 10.0,
        *,
        guard: GatewayGuard,
        writes: GroupCommit,
        fetch_stall_seconds: float = 30.0,
        metrics: OrchestratorMetrics | None = None,
    ) -> None:
        self._fleet = fleet
        self._registry = registry
        self._feedback = feedback
        self.guard = guard  # every method's first call (grpc/auth.py)
        self._hub = hub
        self._presence = presence
        self._heartbeat = heartbeat_seconds
        self._writes = writes  # status reports and result batches, many per transaction
        self._fetch_stall = fetch_stall_seconds
        self._metrics = metrics if metrics is not None else OrchestratorMetrics()
        hub.fan_out.on_sent = self._metrics.desired_fanout_seconds.observe
        self._encoded: dict[tuple[tuple[DesiredVersion, ...], int, int], bytes] = {}

    @rpc_boundary
    async def Enroll(
        self, request: orchestrator_pb2.EnrollRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.EnrollResponse:
        enrolled = await self.guard.enroll(context, request)
        return orchestrator_pb2.EnrollResponse(
            gateway_id=enrolled.gateway_id,
            gateway_secret=enrolled.secret,
            admission=orchestrator_pb2.GatewayAdmission.Value(
                f"GATEWAY_ADMISSION_{enrolled.state}"
            ),
        )

    @rpc_boundary
    @recheck_on_heartbeat
    async def Subscribe(
        self, request: orchestrator_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.SubscribeResponse | bytes]:
        await self.guard.subscribe(context, request)  # identity, rate and field limits
        gateway_id = request.gateway_id
        models = converters.to_reported_models(request.models)
        labels = await self._writes.run(
            functools.partial(
                self._fleet.connect_in,
                gateway_id=gateway_id,
                labels=dict(request.labels),
                gateway_version=request.gateway_version,
                models=models,
            )
        )
        labels_epoch = self._hub.epoch
        logger.info("gateway %s subscribed", gateway_id)
        interval = max(1, round(self._heartbeat))
        wheel = self._hub.heartbeats
        slot = wheel.join()
        sent: tuple[object, ...] | None = None
        generation = 0
        last_sent = time.monotonic()
        fan_out = self._hub.fan_out
        token = fan_out.open()
        self._metrics.subscribe_streams.inc()
        try:
            while True:
                # Only when the hub moved (fleet/changes.py): between changes an idle
                # stream waits on its heartbeat slot (fleet/heartbeats.py), no timer of
                # its own, no query and no thread.
                epoch = self._hub.epoch
                desired = await self._hub.desired(gateway_id, labels, labels_epoch)
                if tuple(desired) != sent:
                    sent = tuple(desired)
                    generation += 1
                    yield self._encoded_desired(sent, generation, interval)
                    last_sent = time.monotonic()
                fan_out.sent(token, epoch)  # the change reached this stream (fleet/fan_out.py)
                while self._hub.epoch == epoch:
                    await wheel.wait(slot)
                    # Woken by a change, or by the slot's turn: a heartbeat unless the
                    # stream spoke within the last half interval.
                    if self._hub.epoch == epoch and (
                        time.monotonic() - last_sent >= self._heartbeat / 2
                    ):
                        self._presence.seen(gateway_id)
                        yield orchestrator_pb2.SubscribeResponse(
                            heartbeat=orchestrator_pb2.Heartbeat(
                                sent_at=converters.timestamp(time.time())
                            ),
                            heartbeat_interval_seconds=interval,
                        )
                        last_sent = time.monotonic()
        finally:
            fan_out.close(token)
            self._metrics.subscribe_streams.dec()
            logger.info("gateway %s unsubscribed", gateway_id)

    def _encoded_desired(
        self, desired: tuple[DesiredVersion, ...], generation: int, interval: int
    ) -> bytes:
        """The SubscribeResponse carrying ``desired``, encoded once for every stream that
        sends the same state as the same generation (most of a fleet, after an assign);
        grpc/server.py lets Subscribe yield it as bytes."""
        key = (desired, generation, interval)
        encoded = self._encoded.get(key)
        if encoded is None:
            if len(self._encoded) >= ENCODED_STATES_KEPT:
                self._encoded.clear()  # distinct states are few; start over when not
            encoded = self._encoded[key] = orchestrator_pb2.SubscribeResponse(
                desired=converters.to_desired_state(desired, generation),
                heartbeat_interval_seconds=interval,
            ).SerializeToString()
        return encoded

    @rpc_boundary
    async def FetchModel(  # type: ignore[override]  # context.write, which the stubs' types omit
        self, request: orchestrator_pb2.FetchModelRequest, context: grpc.aio.ServicerContext
    ) -> None:
        # identity, rate, only versions assigned
        await self.guard.fetch(context, request, self._hub.desired_of)
        info = await asyncio.to_thread(
            self._registry.version, request.model_name, request.model_version
        )
        if request.offset > info.size_bytes:
            raise InvalidRequest(
                f"offset {request.offset} is past the end of the {info.size_bytes}-byte bundle"
            )
        offset = int(request.offset)
        # Through the artifact store (a folder or the shared database), a block of at most
        # CHUNK_BYTES at a time, each under a slot of the process's fetch budget until it
        # is written (registry/fetch_budget.py); damaged bytes end the call with DATA_LOSS.
        # A write that does not complete within the stall limit (the gateway stopped
        # reading) ends the call: eight such gateways would otherwise hold every slot.
        blocks = await asyncio.to_thread(self._registry.bundle_blocks, info, offset)
        while True:
            async with fetch_budget.slot():
                block = await asyncio.to_thread(next, blocks, None)
                if block is None:
                    break
                reply = orchestrator_pb2.FetchModelResponse(
                    offset=offset,
                    data=block,
                    bundle_size=info.size_bytes,
                    bundle_sha256=info.sha256,
                )
                del block  # the message holds its own copy
                try:
                    await asyncio.wait_for(context.write(reply), self._fetch_stall)
                except TimeoutError:
                    raise ReaderStalled(
                        f"the block at offset {offset} was not read within "
                        f"{self._fetch_stall:g} s; FetchModel again from offset {offset}"
                    ) from None
                offset += len(reply.data)
                self._metrics.fetch_model_bytes.inc(len(reply.data))
                del reply  # nothing of a sent block outlives its slot

    @rpc_boundary
    async def ReportStatus(
        self, request: orchestrator_pb2.ReportStatusRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ReportStatusResponse:
        await self.guard.report_status(context, request)  # identity, rate, event quota
        gateway_id = request.gateway_id
        models = converters.to_reported_models(request.models)
        events = converters.to_reported_events(request.events)
        shadow = [  # evidence for rollout gates (rollouts/gates.py)
            (r.model_name, r.model_version, evidence_from_proto(r.evidence))
            for r in request.shadow_reports
        ]
        evidence = ShadowEvidenceStore(self._fleet.db)

        def write(session: Session) -> int:
            self.guard.charge_in(session, gateway_id, events=len(events))  # event quota
            if shadow:
                evidence.record_in(session, gateway_id, shadow)
            return self._fleet.report_in(session, gateway_id, models, events)

        stored = await self._writes.run(write)
        return orchestrator_pb2.ReportStatusResponse(events_stored=stored)

    @rpc_boundary
    async def ReportResults(
        self,
        request_iterator: AsyncIterator[orchestrator_pb2.ReportResultsRequest],
        context: grpc.aio.ServicerContext,
    ) -> orchestrator_pb2.ReportResultsResponse:
        caller = await self.guard.caller(context, None, "ReportResults")
        batches: list[BatchIn] = []
        sizes: list[int] = []
        async for request in request_iterator:
            if not request.batch.batch_id or not request.gateway_id:
                raise InvalidRequest("every batch needs a batch_id and a gateway_id")
            if request.gateway_id != caller:
                raise CredentialRefused(
                    f"the credential belongs to gateway {caller}, not to "
                    f"{request.gateway_id[:64]!r}: a gateway reports only its own results"
                )
            if len(batches) >= MAX_BATCHES_PER_CALL:
                raise InvalidRequest(f"at most {MAX_BATCHES_PER_CALL} batches per call")
            batches.append(converters.to_batch(request.gateway_id, request.batch))
            sizes.append(request.batch.ByteSize())
        # All of a call's batches join the same group commits, each charged to the daily
        # quota in its own write; a duplicate (sent again after a lost answer) is
        # acknowledged, not stored twice.
        await asyncio.gather(
            *(
                self._feedback.store_in(
                    self._writes,
                    batch,
                    functools.partial(self.guard.charge_in, gateway_id=caller, result_bytes=size),
                )
                for batch, size in zip(batches, sizes, strict=True)
            )
        )
        return orchestrator_pb2.ReportResultsResponse(
            acknowledged_batch_ids=[b.batch_id for b in batches]
        )
