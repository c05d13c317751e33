"""TLS and mTLS handshakes with a CA made in the test."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.app import Gateway
from tests.support.certs import Pki, make_pki
from tests.support.gateways import gateway_settings


async def _health(
    target: str, credentials: grpc.ChannelCredentials
) -> inference_pb2.HealthResponse:
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        return await stub.Health(inference_pb2.HealthRequest(), timeout=5)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


async def test_tls_server(model_root: Path, pki: Pki) -> None:
    gw = Gateway(gateway_settings(model_root, tls_cert=pki.server_cert, tls_key=pki.server_key))
    await gw.start()
    await gw.wait_for_models()
    target = f"127.0.0.1:{gw.grpc_port}"
    try:
        trusted = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
        assert (await _health(target, trusted)).status == inference_pb2.SERVING_STATUS_SERVING
        async with grpc.aio.insecure_channel(target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await inference_pb2_grpc.InferenceServiceStub(plain).Health(
                    inference_pb2.HealthRequest(), timeout=3
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await gw.stop()


async def test_mtls_requires_a_client_certificate_from_the_ca(model_root: Path, pki: Pki) -> None:
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
    target = f"127.0.0.1:{gw.grpc_port}"
    ca = pki.ca_cert.read_bytes()
    try:
        with_cert = grpc.ssl_channel_credentials(
            ca, pki.client_key.read_bytes(), pki.client_cert.read_bytes()
        )
        assert (await _health(target, with_cert)).status == inference_pb2.SERVING_STATUS_SERVING
        for refused in (
            grpc.ssl_channel_credentials(ca),
            grpc.ssl_channel_credentials(
                ca, pki.other_ca_client_key.read_bytes(), pki.other_ca_client_cert.read_bytes()
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _health(target, refused)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await gw.stop()
