"""Shared fixtures: real models on disk and a real gateway on a loopback port."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from model_factory import build_model_root  # noqa: E402

from edge_server.app import Gateway  # noqa: E402
from edge_server.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def model_root(tmp_path: Path) -> Path:
    return build_model_root(tmp_path / "models")


def gateway_settings(model_root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_root": model_root,
        "host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "default_model": "gray",
        "shutdown_grace_seconds": 2.0,
        "inference_workers": 2,
        "intra_op_threads": 1,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def gateway(model_root: Path) -> AsyncIterator[Gateway]:
    gw = Gateway(gateway_settings(model_root))
    await gw.start()
    await gw.wait_for_models()
    yield gw
    await gw.stop()


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as ch:
        yield ch
