"""Management calls need the bearer token; inference stays open."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from conftest import gateway_settings

from edge.v1 import inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc
from edge_server.app import Gateway


@pytest.fixture
async def guarded(model_root: Path, tmp_path: Path) -> Gateway:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    gw = Gateway(gateway_settings(model_root, management_token_file=token_file))
    await gw.start()
    await gw.wait_for_models()
    yield gw  # type: ignore[misc]
    await gw.stop()


async def test_token_required_for_management_only(guarded: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.grpc_port}") as ch:
        models = model_pb2_grpc.ModelServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await models.ListModels(model_pb2.ListModelsRequest())
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "authorization: Bearer" in (missing.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await models.ListModels(
                model_pb2.ListModelsRequest(), metadata=(("authorization", "Bearer nope"),)
            )
        assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as stream_refused:
            call = models.ModelUpdate(iter([model_pb2.ModelUpdateRequest()]))
            async for _ in call:
                pass
        assert stream_refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        listed = await models.ListModels(
            model_pb2.ListModelsRequest(), metadata=(("authorization", "Bearer s3cret-token"),)
        )
        assert {m.name for m in listed.models} == {"gray", "rgb", "tensoronly"}
        # Inference needs no token.
        health = await inference_pb2_grpc.InferenceServiceStub(ch).Health(
            inference_pb2.HealthRequest()
        )
        assert health.status == inference_pb2.SERVING_STATUS_SERVING
    text = guarded.metrics.render().decode()
    assert 'edge_auth_failures_total{reason="missing"} 2.0' in text
    assert 'edge_auth_failures_total{reason="invalid"} 1.0' in text
