"""The gateway's client of edge.v1.OrchestratorService (the transport of pull mode).

Converts between protobuf and the plain types in ``edge_server.pull.types`` and
turns every gRPC failure into ``CloudUnavailable``. A subscription that hears
nothing (not even a heartbeat) for three heartbeat intervals is treated as dead.

Identity: on first contact the gateway enrolls (``Enroll`` with the enrollment token)
and keeps the secret it gets in ``identity_file`` (written crash-safe, mode 600); every
later call, after restarts too, sends that secret. A secret the orchestrator does not
know (UNAUTHENTICATED: its database was reset, or an operator removed the gateway) is
dropped, so the next attempt enrolls again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from edge_contracts.atomic_files import write_bytes_atomic
from edge_contracts.proto.edge.v1 import (
    model_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    types_pb2,
)
from edge_contracts.shadow_evidence import ShadowEvidence, evidence_to_proto
from edge_server.errors import CloudUnavailable
from edge_server.feedback.outbox import Drops, OutboxEntry
from edge_server.lifecycle.updater import Mode
from edge_server.pull.result_batch import result_batch, timestamp
from edge_server.pull.types import DesiredVersion, RunningModel, StatusEvent

__all__ = ["OrchestratorClient"]

logger = logging.getLogger(__name__)

_MODES = {
    model_pb2.ACTIVATION_MODE_UNSPECIFIED: Mode.ACTIVATE,
    model_pb2.ACTIVATION_MODE_ACTIVATE: Mode.ACTIVATE,
    model_pb2.ACTIVATION_MODE_STAGE: Mode.STAGE,
    model_pb2.ACTIVATION_MODE_SHADOW: Mode.SHADOW,
}
_EVENT_KINDS = {
    "ACTIVATED": orchestrator_pb2.STATUS_EVENT_KIND_ACTIVATED,
    "REJECTED": orchestrator_pb2.STATUS_EVENT_KIND_REJECTED,
    "ROLLED_BACK": orchestrator_pb2.STATUS_EVENT_KIND_ROLLED_BACK,
    "STAGED": orchestrator_pb2.STATUS_EVENT_KIND_STAGED,
    "FAILED": orchestrator_pb2.STATUS_EVENT_KIND_FAILED,
}
FIRST_MESSAGE_SECONDS = 30.0
FETCH_IDLE_SECONDS = 30.0


def _running(models: Sequence[RunningModel]) -> list[orchestrator_pb2.RunningModel]:
    return [
        orchestrator_pb2.RunningModel(
            model_name=m.model,
            active_version=m.active_version,
            state=types_pb2.ModelState.Value(f"MODEL_STATE_{m.state}"),
            bundle_sha256=m.sha256,
        )
        for m in models
    ]


_PICK_ONE_AT_RANDOM = json.dumps(
    {"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": True}}]}
)


class OrchestratorClient:
    def __init__(
        self,
        target: str,
        gateway_id: str,
        token: str = "",
        ca_file: Path | None = None,
        call_timeout: float = 20.0,
        identity_file: Path | None = None,
    ) -> None:
        """``token`` is the enrollment token; ``identity_file`` keeps the secret it buys."""
        self.target = target
        self.gateway_id = gateway_id
        self._enrollment_token = token
        self._identity_file = identity_file
        options = [
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # Several replicas behind one target (a DNS name with one address each, or
            # ipv4:A:PORT,B:PORT): stay on one, picked at random so a fleet spreads over
            # them, and move to the next when it goes away.
            ("grpc.service_config", _PICK_ONE_AT_RANDOM),
        ]
        if ca_file is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        self._stub = orchestrator_pb2_grpc.OrchestratorServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] | None = None
        self._timeout = call_timeout
        self._load_identity()

    @property
    def enrolled(self) -> bool:
        return self._metadata is not None

    def _load_identity(self) -> None:
        if self._identity_file is None or not self._identity_file.exists():
            return
        try:
            stored = json.loads(self._identity_file.read_text(encoding="utf-8"))
            if stored.get("gateway_id") == self.gateway_id and stored.get("secret"):
                self._metadata = (("authorization", f"Bearer {stored['secret']}"),)
            else:
                logger.warning(
                    "%s holds the identity of gateway %r, not %r: enrolling again",
                    self._identity_file, stored.get("gateway_id"), self.gateway_id,
                )  # fmt: skip
        except (OSError, ValueError, AttributeError) as exc:
            logger.warning("cannot read %s (%s): enrolling again", self._identity_file, exc)

    async def ensure_identity(self, gateway_version: str) -> None:
        """Enroll unless a secret is held already; raises CloudUnavailable on failure."""
        if self._metadata is not None:
            return
        request = orchestrator_pb2.EnrollRequest(
            gateway_id=self.gateway_id,
            enrollment_token=self._enrollment_token,
            gateway_version=gateway_version,
        )
        try:
            reply = await self._stub.Enroll(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise self._unavailable("Enroll", err) from None
        if self._identity_file is not None:
            document = {"gateway_id": reply.gateway_id, "orchestrator": self.target,
                        "secret": reply.gateway_secret}  # fmt: skip
            # Before the secret is used: a crash now leaves it on disk, never half of it.
            await asyncio.to_thread(
                write_bytes_atomic, self._identity_file, json.dumps(document).encode(), 0o600
            )
        self._metadata = (("authorization", f"Bearer {reply.gateway_secret}"),)
        admission = orchestrator_pb2.GatewayAdmission.Name(reply.admission)
        logger.info(
            "enrolled at orchestrator %s as gateway %s (%s)",
            self.target, reply.gateway_id, admission.removeprefix("GATEWAY_ADMISSION_"),
        )  # fmt: skip

    def _forget_identity(self) -> None:
        logger.warning(
            "orchestrator %s does not know this gateway's secret: enrolling again", self.target
        )
        self._metadata = None
        if self._identity_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self._identity_file.unlink()

    def _unavailable(self, what: str, err: grpc.aio.AioRpcError) -> CloudUnavailable:
        code = err.code()
        if code == grpc.StatusCode.UNAUTHENTICATED and self._metadata is not None:
            self._forget_identity()
        elif code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
            # Waiting for admission, revoked, or a bad enrollment token: the operator's move.
            logger.warning("orchestrator %s refused %s: %s", self.target, what, err.details())
        return CloudUnavailable(f"orchestrator {self.target}: {what}: {code.name}: {err.details()}")

    async def subscribe(
        self, labels: Mapping[str, str], gateway_version: str, running: Sequence[RunningModel]
    ) -> AsyncIterator[list[DesiredVersion] | None]:
        """Desired states as they arrive (None for a heartbeat); ends by raising."""
        request = orchestrator_pb2.SubscribeRequest(
            gateway_id=self.gateway_id,
            labels=dict(labels),
            models=_running(running),
            gateway_version=gateway_version,
        )
        call: Any = self._stub.Subscribe(request, metadata=self._metadata)
        idle = FIRST_MESSAGE_SECONDS
        try:
            while True:
                try:
                    message = await asyncio.wait_for(call.read(), idle)
                except TimeoutError:
                    raise CloudUnavailable(
                        f"orchestrator {self.target}: no heartbeat for {idle:.0f} s"
                    ) from None
                if message is grpc.aio.EOF:
                    raise CloudUnavailable(f"orchestrator {self.target} ended the subscription")
                if message.heartbeat_interval_seconds:
                    idle = 3.0 * message.heartbeat_interval_seconds + 2.0
                if message.WhichOneof("message") == "desired":
                    yield [
                        DesiredVersion(
                            model=m.model_name,
                            version=m.model_version,
                            sha256=m.bundle_sha256,
                            size=m.bundle_size,
                            mode=_MODES.get(m.activation_mode, Mode.ACTIVATE),
                            rollout_id=m.rollout_id,
                            window=m.activation_window,
                        )
                        for m in message.desired.models
                    ]
                else:
                    yield None
        except grpc.aio.AioRpcError as err:
            raise self._unavailable("Subscribe", err) from None
        finally:
            call.cancel()

    async def fetch(
        self, model: str, version: str, offset: int
    ) -> AsyncIterator[tuple[int, bytes]]:
        request = orchestrator_pb2.FetchModelRequest(
            gateway_id=self.gateway_id, model_name=model, model_version=version, offset=offset
        )
        call: Any = self._stub.FetchModel(request, metadata=self._metadata)
        try:
            while True:
                try:
                    message = await asyncio.wait_for(call.read(), FETCH_IDLE_SECONDS)
                except TimeoutError:
                    raise CloudUnavailable(
                        f"orchestrator {self.target}: download stalled for "
                        f"{FETCH_IDLE_SECONDS:.0f} s"
                    ) from None
                if message is grpc.aio.EOF:
                    return
                yield int(message.offset), bytes(message.data)
        except grpc.aio.AioRpcError as err:
            raise self._unavailable("FetchModel", err) from None
        finally:
            call.cancel()

    async def report_status(
        self,
        running: Sequence[RunningModel],
        events: Sequence[StatusEvent],
        shadows: Sequence[tuple[str, str, ShadowEvidence]] = (),
    ) -> None:
        request = orchestrator_pb2.ReportStatusRequest(
            shadow_reports=[
                orchestrator_pb2.ShadowReport(
                    model_name=model, model_version=version, evidence=evidence_to_proto(found)
                )
                for model, version, found in shadows
            ],
            gateway_id=self.gateway_id,
            models=_running(running),
            events=[
                orchestrator_pb2.StatusEvent(
                    model_name=e.model,
                    model_version=e.version,
                    kind=_EVENT_KINDS.get(e.kind, orchestrator_pb2.STATUS_EVENT_KIND_UNSPECIFIED),
                    reason=e.reason,
                    occurred_at=timestamp(e.at),
                )
                for e in events
            ],
        )
        try:
            await self._stub.ReportStatus(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            raise self._unavailable("ReportStatus", err) from None

    async def report_results(self, entries: list[OutboxEntry], drops: Drops) -> list[str]:
        requests = [
            orchestrator_pb2.ReportResultsRequest(
                gateway_id=self.gateway_id, batch=result_batch(e.payload, drops)
            )
            for e in entries
        ]
        try:
            reply = await self._stub.ReportResults(
                iter(requests), metadata=self._metadata, timeout=max(60.0, self._timeout)
            )
        except grpc.aio.AioRpcError as err:
            raise self._unavailable("ReportResults", err) from None
        return list(reply.acknowledged_batch_ids)

    async def close(self) -> None:
        await self._channel.close()
