"""The one ModelUpdate push client (edge_client.push_protocol, .push, .aio_push) and
its orchestrator use, against real gateways on loopback ports with real bundles."""

from __future__ import annotations

import functools
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cloud_orchestrator.errors import GatewayError
from cloud_orchestrator.grpc.push_client import GrpcGatewayControl
from cloud_orchestrator.rollouts.gateway_control import BundleRef
from edge_client import AsyncEdgeClient
from edge_client.aio_push import push_bundle_async
from edge_client.push import RETRYABLE_CODES, push_bundle
from edge_contracts.backoff import Backoff
from tests.support.bundles import build_bundle, make_keys, sha256_of
from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.lifecycle import GRAY_MANIFEST
from tests.support.model_factory import linear_classifier

Retries = list[tuple[int, grpc.StatusCode]]


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(bundle, public key that verifies it)."""
    key, public = make_keys(tmp_path / "keys")
    model = linear_classifier(tmp_path / "src" / "model.onnx", seed=41)
    yield build_bundle(tmp_path / "g4.edgebundle", model, "gray", "4", key, GRAY_MANIFEST), public


@pytest.fixture
def idle_gateway(
    model_root: Path, bundle: tuple[Path, Path]
) -> Iterator[tuple[ThreadedGateway, Path]]:
    """A gateway that drops a ModelUpdate stream silent for 0.5 s (keeping its bytes)."""
    path, public = bundle
    running = ThreadedGateway(
        gateway_settings(
            model_root,
            trusted_keys=(public,),
            management_token="tok",
            update_idle_timeout_seconds=0.5,
        )
    )
    yield running, path
    running.stop()


def test_the_retryable_codes_are_the_transient_ones() -> None:
    assert {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    } <= RETRYABLE_CODES
    assert grpc.StatusCode.PERMISSION_DENIED not in RETRYABLE_CODES
    assert grpc.StatusCode.INVALID_ARGUMENT not in RETRYABLE_CODES


def test_backoff_is_full_jitter_doubling_to_its_cap() -> None:
    backoff = Backoff(0.25, 1.0, rng=random.Random(7))
    ceilings, delays = [], []
    for _ in range(200):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next())
        assert 0.0 <= delays[-1] <= ceilings[-1]
    assert ceilings[:4] == [0.25, 0.5, 1.0, 1.0]
    assert min(delays[3:]) < 0.1  # the whole range, down to zero, not a band
    backoff.reset()
    assert backoff.ceiling() == 0.25


async def test_async_push_resumes_after_the_gateway_drops_an_idle_stream(
    idle_gateway: tuple[ThreadedGateway, Path],
) -> None:
    running, path = idle_gateway
    size = path.stat().st_size
    reports: list[tuple[int, str, int]] = []  # retries so far, stage, bytes stored
    retries: Retries = []

    def progress(stage: str, done: int, _total: int) -> None:
        reports.append((len(retries), stage, done))
        if stage == "RECEIVING" and done > size // 3 and not retries:
            time.sleep(1.0)  # the client goes silent: the gateway aborts the stream

    async with grpc.aio.insecure_channel(running.target) as channel:
        result = await push_bundle_async(
            channel,
            path,
            token="tok",
            progress=progress,
            chunk_bytes=1024,
            on_retry=lambda attempt, err, _delay: retries.append((attempt, err.code())),
        )
        assert result.stage == "ACTIVE" and result.attempts >= 2
        # The gateway's idle abort, or the INTERNAL of a write racing with it.
        assert retries[0][0] == 1 and retries[0][1] in RETRYABLE_CODES
        assert size <= result.bytes_sent < 2 * size  # the remainder only, not everything
        resumed = [done for retried, _, done in reports if retried]
        assert resumed[0] > size // 3  # the retry began at the gateway's offset, not 0
        again = await push_bundle_async(channel, path, token="tok")
        assert again.stage == "ACTIVE" and again.bytes_sent == 0 and again.attempts == 1


async def test_async_push_does_not_retry_a_refused_token(
    idle_gateway: tuple[ThreadedGateway, Path],
) -> None:
    running, path = idle_gateway
    retries: Retries = []
    async with grpc.aio.insecure_channel(running.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await push_bundle_async(
                channel,
                path,
                token="wrong",
                max_attempts=10,
                on_retry=lambda attempt, err, _delay: retries.append((attempt, err.code())),
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # grpc.aio reports a write that races with the gateway's refusal as INTERNAL ("Internal
    # error from Core"), losing the refusal: only those are retried, never the refusal.
    assert {code for _, code in retries} <= {grpc.StatusCode.INTERNAL}


def test_sync_push_retries_an_unreachable_gateway_then_gives_up(
    bundle: tuple[Path, Path],
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retries: Retries = []
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    with channel, pytest.raises(grpc.RpcError) as failed:
        push_bundle(
            channel,
            bundle[0],
            max_attempts=3,
            timeout=5.0,
            on_retry=lambda attempt, err, _delay: retries.append((attempt, err.code())),
        )
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert retries == [(1, grpc.StatusCode.UNAVAILABLE), (2, grpc.StatusCode.UNAVAILABLE)]


def file_blocks(path: Path, offset: int) -> Iterator[bytes]:
    """The rollout runner's block source over a bundle file (256 KiB blocks, as a store)."""
    with path.open("rb") as handle:
        handle.seek(offset)
        while block := handle.read(256 << 10):
            yield block


async def test_orchestrator_push_reports_uploaded_bytes_and_gateway_errors(
    idle_gateway: tuple[ThreadedGateway, Path],
) -> None:
    running, path = idle_gateway
    size = path.stat().st_size
    ref = BundleRef(functools.partial(file_blocks, path), "gray", "4", sha256_of(path), size)
    refused = GrpcGatewayControl(running.target, "wrong", max_attempts=10)  # see above
    try:
        with pytest.raises(GatewayError, match=r"ModelUpdate \(attempt \d+\): PERMISSION_DENIED"):
            await refused.push(ref, "orchestrator:test")
    finally:
        await refused.close()
    seen: list[tuple[int, int]] = []
    control = GrpcGatewayControl(running.target, "tok")
    try:
        outcome = await control.push(ref, "orchestrator:test", lambda *done: seen.append(done))
    finally:
        await control.close()
    assert outcome.stage == "ACTIVE" and outcome.bytes_sent == size and outcome.attempts == 1
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_async_edge_client_pushes_with_its_token(
    idle_gateway: tuple[ThreadedGateway, Path],
) -> None:
    running, path = idle_gateway
    stages: list[str] = []
    async with AsyncEdgeClient(running.target, token="tok") as client:
        result = await client.push(path, mode="stage", progress=lambda s, *_: stages.append(s))
    assert result.stage == "STAGED" and result.model_version == "4" and stages[0] == "RECEIVING"
