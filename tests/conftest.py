"""Shared fixtures: real models on disk and a real gateway on a loopback port."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from model_factory import build_model_root

from edge_server.app import Gateway
from edge_server.settings import Settings

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


class ThreadedGateway:
    """A real gateway on its own event loop thread, for tests that use sync clients."""

    def __init__(self, settings: Settings) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.gateway = Gateway(settings)
        self._call(self._start())

    def _call(self, coro: object) -> object:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)  # type: ignore[arg-type]

    async def _start(self) -> None:
        await self.gateway.start()
        await self.gateway.wait_for_models()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.grpc_port}"

    def stop(self) -> None:
        self._call(self.gateway.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def threaded_gateway(model_root: Path) -> Iterator[ThreadedGateway]:
    running = ThreadedGateway(gateway_settings(model_root))
    yield running
    running.stop()


@pytest.fixture
def gateway_sync_target(threaded_gateway: ThreadedGateway) -> str:
    return threaded_gateway.target
