"""edge_client.push: real uploads to a real gateway, resumed after a broken stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from bundles import build_bundle, make_keys, push
from gateway_fixtures import ThreadedGateway, gateway_settings
from lifecycle_fixtures import GRAY_MANIFEST
from model_factory import linear_classifier

from edge.v1 import model_pb2_grpc
from edge_client.push import push_bundle


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
