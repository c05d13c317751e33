"""One simulated pull gateway: what edge_server/pull/agent.py and orchestrator_client.py do
on the wire, without a model runtime.

Subscribe with labels and the running models; on a new desired version FetchModel from the
stored offset (some fetches are cut after their first chunk and resumed), check the sha256,
then ReportStatus; on heartbeats send armed ReportResults batches; reconnect with
exponential backoff and full jitter (0.5 s up to 30 s, as the gateway does).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from benchmarks.fleet.auth import GatewayAuth
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc, types_pb2

__all__ = ["Policy", "SimulatedGateway"]

FIRST_MESSAGE_SECONDS = 30.0
FETCH_IDLE_SECONDS = 30.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
ACTIVATION_SECONDS = (0.2, 1.0)  # load, warm-up and golden check of a small model
REPORT_ATTEMPTS = 40  # minutes of retries: only a run's end stops a report
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE,)


@dataclass
class Policy:
    """What the whole simulated fleet does; changed by the simulator's commands."""

    fetch_models: set[str] = field(default_factory=set)
    interrupt_fraction: float = 0.0
    batches_per_call: int = 2


@dataclass
class Fetch:
    ok: bool = False
    done_at: float = 0.0
    interrupted: int = 0
    resumed_from: list[int] = field(default_factory=list)
    bytes: int = 0
    errors: int = 0
    size: int = 0


def _stamp(value: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(value * 1e9))
    return stamp


def _batch(model: str, version: str) -> orchestrator_pb2.ResultBatch:
    now = time.time()
    return orchestrator_pb2.ResultBatch(
        batch_id=uuid.uuid4().hex,
        created_at=_stamp(now),
        aggregates=[
            orchestrator_pb2.ResultAggregate(
                model_name=model,
                model_version=version,
                bucket_start=_stamp(now - 60),
                bucket_seconds=60,
                class_counts=[orchestrator_pb2.ClassCount(class_id=3, label="3", count=40)],
                confidence_histogram=[0] * 9 + [40],
                latency=orchestrator_pb2.LatencySummary(
                    count=40, sum_us=40_000, max_us=2_000, p50_us=900, p99_us=1_900
                ),
                success_count=40,
            )
        ],
    )


class SimulatedGateway:
    def __init__(
        self,
        gateway_id: str,
        labels: dict[str, str],
        running: dict[str, tuple[str, str]],
        routes: list[tuple[int, grpc.aio.Channel, grpc.aio.Channel]],
        auth: GatewayAuth,
        policy: Policy,
    ) -> None:
        """``routes``: (target index, channel, fetch channel), the gateway's home first;
        as the real gateway does with every replica's address, it moves to the next route
        when its replica is unreachable. Bundles come over channels of their own: a real
        gateway has its own connection, and a few connections shared by thousands of
        fetches would hold everyone's heartbeats behind HTTP/2 flow control."""
        self.id = gateway_id
        self.labels = labels
        self.running = dict(running)  # model -> (version, sha256)
        self._routes = routes
        self._route = 0
        self._stubs = [orchestrator_pb2_grpc.OrchestratorServiceStub(c) for _, c, _ in routes]
        self._fetch_stubs = [orchestrator_pb2_grpc.OrchestratorServiceStub(f) for *_, f in routes]
        self.subscriptions: list[tuple[float, int]] = []  # (first message at, target index)
        self._auth = auth
        self._policy = policy
        self._rng = random.Random(gateway_id)
        self.subscribed_at = 0.0
        self.seen: dict[tuple[str, str], float] = {}
        self.fetches: dict[tuple[str, str], Fetch] = {}
        self.reported: set[tuple[str, str]] = set()
        self.unreported = 0  # events given up on after REPORT_ATTEMPTS
        self.reconnects = 0
        self.errors: dict[str, int] = {}
        self.results_left = 0
        self.results_acked = 0
        self.results_busy = False
        self._applying: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def _channel(self) -> grpc.aio.Channel:
        return self._routes[self._route][1]

    @property
    def _stub(self) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
        return self._stubs[self._route]

    @property
    def target(self) -> int:
        """Index of the replica the gateway talks to now."""
        return self._routes[self._route][0]

    def _next_route(self) -> None:
        self._route = (self._route + 1) % len(self._routes)

    def _error(self, what: str, err: BaseException) -> None:
        code = err.code().name if isinstance(err, grpc.aio.AioRpcError) else type(err).__name__
        key = f"{what}:{code}"
        self.errors[key] = self.errors.get(key, 0) + 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _running_pb(self) -> list[orchestrator_pb2.RunningModel]:
        return [
            orchestrator_pb2.RunningModel(
                model_name=model,
                active_version=version,
                state=types_pb2.MODEL_STATE_READY,
                bundle_sha256=sha,
            )
            for model, (version, sha) in sorted(self.running.items())
        ]

    async def run(self, start_delay: float) -> None:
        await asyncio.sleep(start_delay)
        attempt = 0
        try:
            while True:
                if await self._subscribe_once():
                    attempt = 0
                self.reconnects += 1
                ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2**attempt)
                attempt += 1
                await asyncio.sleep(self._rng.uniform(0, ceiling))
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _subscribe_once(self) -> bool:
        """One subscription until it breaks; True when it delivered at least one message."""
        metadata = await self._auth.metadata(self.id, self._channel)
        request = orchestrator_pb2.SubscribeRequest(
            gateway_id=self.id,
            labels=self.labels,
            models=self._running_pb(),
            gateway_version="fleet-sim",
        )
        call: Any = self._stub.Subscribe(request, metadata=metadata)
        idle, delivered = FIRST_MESSAGE_SECONDS, False
        try:
            while True:
                # asyncio.timeout, not wait_for: no task per message (10,000 streams)
                async with asyncio.timeout(idle):
                    message = await call.read()
                if message is grpc.aio.EOF:
                    self._error("Subscribe", EOFError())
                    return delivered
                if not delivered:
                    delivered = True
                    self.subscribed_at = self.subscribed_at or time.time()
                    self.subscriptions.append((time.time(), self.target))
                if message.heartbeat_interval_seconds:
                    idle = 3.0 * message.heartbeat_interval_seconds + 2.0
                if message.WhichOneof("message") == "desired":
                    self._on_desired(message.desired)
                elif self.results_left > 0 and not self.results_busy:
                    self.results_busy = True
                    self._spawn(self._send_results())
        except (TimeoutError, grpc.aio.AioRpcError) as err:
            if (
                isinstance(err, grpc.aio.AioRpcError)
                and err.code() == grpc.StatusCode.UNAUTHENTICATED
            ):
                self._auth.forget(self.id)
            if isinstance(err, grpc.aio.AioRpcError) and err.code() in _UNREACHABLE:
                self._next_route()
            self._error("Subscribe", err)
            return delivered
        finally:
            call.cancel()

    def _on_desired(self, desired: orchestrator_pb2.DesiredState) -> None:
        now = time.time()
        for model in desired.models:
            key = (model.model_name, model.model_version)
            self.seen.setdefault(key, now)
            if self.running.get(model.model_name, ("", ""))[0] == model.model_version:
                continue
            if key not in self._applying:
                self._applying.add(key)
                self._spawn(self._apply(model))

    async def _apply(self, model: orchestrator_pb2.DesiredModel) -> None:
        key = (model.model_name, model.model_version)
        try:
            if model.model_name in self._policy.fetch_models and key not in self.fetches:
                fetch = self.fetches[key] = Fetch()
                await self._fetch(model, fetch)
                if not fetch.ok:
                    return
            # Other models: the version is taken as already on disk (the reconciler
            # activates such a version from the local store without a download). Either
            # way a real gateway loads the session, warms it up and checks its golden
            # samples before it reports: a fraction of a second to a second.
            await asyncio.sleep(self._rng.uniform(*ACTIVATION_SECONDS))
            self.running[model.model_name] = (model.model_version, model.bundle_sha256)
            await self._report(model)
        finally:
            self._applying.discard(key)

    async def _fetch(self, model: orchestrator_pb2.DesiredModel, fetch: Fetch) -> None:
        hasher, offset = hashlib.sha256(), 0
        fetch.size = model.bundle_size
        cut = self._rng.random() < self._policy.interrupt_fraction
        for attempt in range(8):
            if offset:
                fetch.resumed_from.append(offset)
            metadata = await self._auth.metadata(self.id, self._channel)
            request = orchestrator_pb2.FetchModelRequest(
                gateway_id=self.id,
                model_name=model.model_name,
                model_version=model.model_version,
                offset=offset,
            )
            call: Any = self._fetch_stubs[self._route].FetchModel(request, metadata=metadata)
            try:
                while True:
                    async with asyncio.timeout(FETCH_IDLE_SECONDS):
                        message = await call.read()
                    if message is grpc.aio.EOF:
                        break
                    if message.offset != offset:
                        raise ValueError(f"chunk at {message.offset}, expected {offset}")
                    hasher.update(message.data)
                    offset += len(message.data)
                    fetch.bytes += len(message.data)
                    if cut and offset < model.bundle_size:
                        cut = False
                        fetch.interrupted += 1
                        break
            except (TimeoutError, ValueError, grpc.aio.AioRpcError) as err:
                fetch.errors += 1
                self._error("FetchModel", err)
            finally:
                call.cancel()
            if offset >= model.bundle_size:
                fetch.ok = hasher.hexdigest() == model.bundle_sha256
                fetch.done_at = time.time()
                return
            await asyncio.sleep(self._rng.uniform(0, min(BACKOFF_MAX, 0.2 * 2**attempt)))

    async def _report(self, model: orchestrator_pb2.DesiredModel) -> None:
        event = orchestrator_pb2.StatusEvent(
            model_name=model.model_name,
            model_version=model.model_version,
            kind=orchestrator_pb2.STATUS_EVENT_KIND_ACTIVATED,
            occurred_at=_stamp(time.time()),
        )
        # As the gateway keeps an event queued until a report of it is acknowledged.
        for attempt in range(REPORT_ATTEMPTS):
            try:
                metadata = await self._auth.metadata(self.id, self._channel)
                request = orchestrator_pb2.ReportStatusRequest(
                    gateway_id=self.id, models=self._running_pb(), events=[event]
                )
                await self._stub.ReportStatus(request, metadata=metadata, timeout=20)
                self.reported.add((model.model_name, model.model_version))
                return
            except grpc.aio.AioRpcError as err:
                self._error("ReportStatus", err)
                delay = min(BACKOFF_MAX, 0.5 * 2 ** min(attempt, 8))
                await asyncio.sleep(self._rng.uniform(0, delay))
        self.unreported += 1

    async def _send_results(self) -> None:
        try:
            model, (version, _) = next(iter(sorted(self.running.items())))
            count = min(self.results_left, self._policy.batches_per_call)
            requests = [
                orchestrator_pb2.ReportResultsRequest(
                    gateway_id=self.id, batch=_batch(model, version)
                )
                for _ in range(count)
            ]
            metadata = await self._auth.metadata(self.id, self._channel)
            reply = await self._stub.ReportResults(iter(requests), metadata=metadata, timeout=60)
            acked = len(reply.acknowledged_batch_ids)
            self.results_acked += acked
            self.results_left -= acked
        except (StopIteration, grpc.aio.AioRpcError) as err:
            self._error("ReportResults", err)
        finally:
            self.results_busy = False
