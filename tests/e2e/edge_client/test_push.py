"""edge_client.push: real uploads to a real gateway, resumed after a broken stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from edge_client.push import push_bundle
from edge_contracts.proto.edge.v1 import model_pb2_grpc
from tests.support.bundles import build_bundle, make_keys, push
from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.lifecycle import GRAY_MANIFEST
from tests.support.model_factory import linear_classifier


@pytest.fixture
def guarded(model_root: Path, tmp_path: Path) -> Iterator[tuple[ThreadedGateway, Path]]:
    key, public = make_keys(tmp_path / "keys")
    model = linear_classifier(tmp_path / "src" / "model.onnx", seed=31)
    bundle = build_bundle(tmp_path / "g3.edgebundle", model, "gray", "3", key, GRAY_MANIFEST)
    running = ThreadedGateway(
        gateway_settings(model_root, trusted_keys=(public,), management_token="tok")
    )
    yield running, bundle
    running.stop()


def test_push_reports_progress_and_activates(guarded: tuple[ThreadedGateway, Path]) -> None:
    running, bundle = guarded
    seen: list[tuple[str, int]] = []
    with grpc.insecure_channel(running.target) as channel:
        result = push_bundle(
            channel,
            bundle,
            token="tok",
            progress=lambda stage, done, _total: seen.append((stage, done)),
        )
        assert result.stage == "ACTIVE" and result.accepted
        assert result.bytes_sent == bundle.stat().st_size and result.attempts == 1
        assert [s for s, _ in seen][:1] == ["RECEIVING"] and "VALIDATING" in {s for s, _ in seen}
        with pytest.raises(grpc.RpcError) as refused:
            push_bundle(channel, bundle, token="wrong")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_push_resumes_a_partial_upload(guarded: tuple[ThreadedGateway, Path]) -> None:
    running, bundle = guarded
    size = bundle.stat().st_size

    async def cut_short() -> int:
        async with grpc.aio.insecure_channel(running.target) as channel:
            stub = model_pb2_grpc.ModelServiceStub(channel)
            _, sent = await push(
                stub, bundle, stop_after_bytes=size // 3, chunk_size=2048,
                metadata=(("authorization", "Bearer tok"),),
            )  # fmt: skip
            await asyncio.sleep(0.2)
            return sent

    already = asyncio.run(cut_short())
    with grpc.insecure_channel(running.target) as channel:
        result = push_bundle(channel, bundle, mode="stage", token="tok")
    assert result.stage == "STAGED"
    assert result.bytes_sent == size - already


@pytest.mark.slow
def test_push_resumes_by_itself_when_the_gateway_restarts(tmp_path: Path) -> None:
    """kill -9 of the gateway in the middle of `push_bundle`: the same call reconnects,
    resumes from the gateway's stored offset and finishes."""
    import socket
    import threading

    from edge_client.push import PushResult
    from tests.support.model_factory import build_model_root, slow_model
    from tests.support.processes import ServerProcess

    root = build_model_root(tmp_path / "models")
    key, public = make_keys(tmp_path / "keys")
    big = slow_model(tmp_path / "src" / "model.onnx")  # ~4 MiB of weights
    bundle = build_bundle(tmp_path / "big.edgebundle", big, "big", "1", key, {})
    size = bundle.stat().st_size
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["--model-root", str(root), "--trusted-keys", str(public), "--grpc-port", str(port)]
    server = ServerProcess(args)
    server.wait_serving()
    halfway, killed = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def progress(stage: str, done: int, _total: int) -> None:
        if stage == "RECEIVING" and done > size // 3 and not killed.is_set():
            halfway.set()
            killed.wait(30)  # send nothing more until the gateway is gone

    def run() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                outcome["result"] = push_bundle(
                    channel, bundle, progress=progress, max_attempts=10, chunk_bytes=64 * 1024
                )
            except grpc.RpcError as err:
                outcome["error"] = err

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert halfway.wait(60)
        server.proc.kill()
        server.proc.wait(10)
        killed.set()
        server = ServerProcess(args)  # same port: the client's retries find it again
        worker.join(120)
        assert "error" not in outcome, outcome.get("error")
        result = outcome["result"]
        assert isinstance(result, PushResult)
        assert result.stage == "ACTIVE" and result.attempts >= 2
        assert size <= result.bytes_sent < 2 * size  # the rest only, not everything again
    finally:
        killed.set()
        server.kill()
