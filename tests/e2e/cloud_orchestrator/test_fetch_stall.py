"""Gateways that start a FetchModel and stop reading cannot hold the orchestrator's shared
fetch budget: each stalled call ends with UNAVAILABLE (resume from its offset) once a
block waits longer than --fetch-stall-seconds, and a gateway that reads gets its bundle
meanwhile, byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from cloud_orchestrator.registry.fetch_budget import FETCH_BLOCKS_IN_FLIGHT
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.bundles import build_bundle
from tests.support.model_factory import linear_classifier
from tests.support.orchestrator import (  # noqa: F401
    GRAY_MANIFEST,
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    publisher,
)

pytestmark = pytest.mark.slow

STALL_SECONDS = 2.0


def bundle_of_about_24_mb(publisher: Publisher) -> Path:
    model = linear_classifier(publisher.workdir / "big" / "model.onnx", size=780, seed=7)
    return build_bundle(
        publisher.workdir / "big-1.edgebundle", model, "big", "1", publisher.key, GRAY_MANIFEST
    )


async def enroll(
    stub: orchestrator_pb2_grpc.OrchestratorServiceStub, token: str
) -> tuple[tuple[str, str], ...]:
    reply = await stub.Enroll(
        orchestrator_pb2.EnrollRequest(gateway_id="gw-1", enrollment_token=token), timeout=10
    )
    credential = (("authorization", f"Bearer {reply.gateway_secret}"),)
    stream = stub.Subscribe(
        orchestrator_pb2.SubscribeRequest(gateway_id="gw-1"), metadata=credential, timeout=30
    )
    await stream.read()  # known to the fleet, with "big" 1 in its desired state
    stream.cancel()
    return credential


async def test_stalled_readers_end_and_a_reading_gateway_gets_its_bundle(
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    db, artifacts = f"sqlite:///{tmp_path / 'orchestrator.db'}", tmp_path / "artifacts"
    bundle = bundle_of_about_24_mb(publisher)
    keys = ("--trusted-keys", str(publisher.public_key))
    cli("publish", str(bundle), *keys, db=db, artifacts=artifacts)
    cli("assign", "big", "--gateways", "id=gw-1", "--version", "1", db=db, artifacts=artifacts)
    token = cli_json("enrollment-tokens", "create", "--auto-admit", db=db, artifacts=artifacts)
    serve = ("--fetch-stall-seconds", str(STALL_SECONDS), "--rate-burst", "100")
    orchestrator = OrchestratorProcess(db, artifacts, *serve)
    request = orchestrator_pb2.FetchModelRequest(
        gateway_id="gw-1", model_name="big", model_version="1"
    )
    try:
        async with grpc.aio.insecure_channel(orchestrator.target) as channel:
            credential = await enroll(
                orchestrator_pb2_grpc.OrchestratorServiceStub(channel), token["token"]
            )

        # One more stalled reader than the budget has slots, each on its own connection,
        # in a process that is then stopped: nothing reads their sockets any more.
        secret = credential[0][1].split(" ", 1)[1]
        count = str(FETCH_BLOCKS_IN_FLIGHT + 1)
        readers = await asyncio.to_thread(
            subprocess.Popen,
            [
                sys.executable,
                "-m",
                "tests.support.stalled_fetcher",
                orchestrator.target,
                secret,
                count,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert readers.stdout is not None and readers.stdin is not None
            assert readers.stdout.readline().strip() == "ready"
            readers.send_signal(signal.SIGSTOP)

            async with grpc.aio.insecure_channel(orchestrator.target) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
                call = stub.FetchModel(request, metadata=credential, timeout=60)
                data = b"".join([r.data async for r in call])
            assert hashlib.sha256(data).digest() == hashlib.sha256(bundle.read_bytes()).digest()

            readers.send_signal(signal.SIGCONT)
            readers.stdin.write("go\n")
            readers.stdin.flush()
            codes = json.loads(readers.stdout.readline())
        finally:
            readers.send_signal(signal.SIGCONT)
            readers.kill()
            readers.wait(10)
        ended = [c for c in codes if c.startswith("UNAVAILABLE")]
        assert ended, codes  # the stalled calls were ended, not served to the end
        assert all("FetchModel again from offset" in c for c in ended)
    finally:
        orchestrator.kill()
