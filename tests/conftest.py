"""Shared fixtures: real models on disk and a real gateway on a loopback port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import settings

from edge_server.app import Gateway
from edge_server.v2.shared_memory import state_file_for
from tests.support.fuzzing import PROFILE_ENV, register_profiles
from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.model_factory import build_model_root
from tests.support.triton_remote import TritonRemote

# Hypothesis profiles of the property tests: `brief` in make test, `fuzz` in make fuzz.
register_profiles()
settings.load_profile(os.environ.get(PROFILE_ENV, "brief"))


@pytest.fixture(autouse=True, scope="session")
def no_shared_memory_state_left() -> Iterator[None]:
    """Gateways killed with SIGKILL in tests cannot remove their shared-memory state
    file (/dev/shm/edge-gateway-*); remove the ones this session left behind."""
    folder = state_file_for("127.0.0.1", 0).parent
    pattern = "edge-gateway-127.0.0.1-*.shm-regions.*"
    before = set(folder.glob(pattern))
    yield
    for path in set(folder.glob(pattern)) - before:
        path.unlink(missing_ok=True)


@pytest.fixture
def model_root(tmp_path: Path) -> Path:
    return build_model_root(tmp_path / "models")


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


@pytest.fixture
def threaded_gateway(model_root: Path) -> Iterator[ThreadedGateway]:
    running = ThreadedGateway(gateway_settings(model_root))
    yield running
    running.stop()


@pytest.fixture
def gateway_sync_target(threaded_gateway: ThreadedGateway) -> str:
    return threaded_gateway.target


@pytest.fixture(scope="session")
def triton_worker() -> Iterator[TritonRemote]:
    """tritonclient in a child process (see tests/support/tritonclient_worker.py for why)."""
    remote = TritonRemote()
    yield remote
    remote.close()


@pytest.fixture
def triton(threaded_gateway: ThreadedGateway, triton_worker: TritonRemote) -> TritonRemote:
    """A tritonclient gRPC client connected to a fresh gateway on the standard model root."""
    triton_worker.connect(threaded_gateway.target)
    return triton_worker
