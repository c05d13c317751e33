"""Management calls need the bearer token; inference stays open."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)
from edge_server.app import Gateway
from tests.support.gateways import gateway_settings


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


async def test_management_on_its_own_port(model_root: Path) -> None:
    gw = Gateway(gateway_settings(model_root, management_port=0, management_token="t0k"))
    await gw.start()
    await gw.wait_for_models()
    try:
        assert gw.management_port not in (0, gw.grpc_port)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as inference_ch:
            with pytest.raises(grpc.aio.AioRpcError) as absent:
                await model_pb2_grpc.ModelServiceStub(inference_ch).ListModels(
                    model_pb2.ListModelsRequest(), metadata=(("authorization", "Bearer t0k"),)
                )
            assert absent.value.code() == grpc.StatusCode.UNIMPLEMENTED
            health = await inference_pb2_grpc.InferenceServiceStub(inference_ch).Health(
                inference_pb2.HealthRequest()
            )
            assert health.status == inference_pb2.SERVING_STATUS_SERVING
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.management_port}") as mgmt_ch:
            stub = model_pb2_grpc.ModelServiceStub(mgmt_ch)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ListModels(model_pb2.ListModelsRequest())
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            listed = await stub.ListModels(
                model_pb2.ListModelsRequest(), metadata=(("authorization", "Bearer t0k"),)
            )
            assert len(listed.models) == 3
    finally:
        await gw.stop()


async def test_mtls_client_certificate_authorizes_management(
    model_root: Path, tmp_path: Path
) -> None:
    from tests.support.certs import make_pki

    pki = make_pki(tmp_path / "pki")
    gw = Gateway(
        gateway_settings(
            model_root,
            tls_cert=pki.server_cert,
            tls_key=pki.server_key,
            tls_client_ca=pki.ca_cert,
        )
    )
    await gw.start()
    await gw.wait_for_models()
    try:
        credentials = grpc.ssl_channel_credentials(
            pki.ca_cert.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
        )
        async with grpc.aio.secure_channel(f"127.0.0.1:{gw.grpc_port}", credentials) as ch:
            listed = await model_pb2_grpc.ModelServiceStub(ch).ListModels(
                model_pb2.ListModelsRequest()
            )
            assert len(listed.models) == 3
    finally:
        await gw.stop()
