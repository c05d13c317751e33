"""Who may use V2 shared memory (security review finding 4), against a real gateway.

Before: any local process registered any /dev/shm object the gateway could open, with
no credential, and had outputs written into another app's object; naming the gateway's
own state file corrupted it and every shared-memory call failed with INTERNAL until a
restart. Now a credential is needed (an app token bound to a uid, or the management
token), objects must belong to that uid, regions serve only the credential that
registered them, the gateway's own files are refused and a corrupt state is recovered.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_contracts.proto.inference import grpc_service_pb2_grpc as pb_grpc
from edge_server.app import Gateway
from edge_server.v2.shared_memory import SHM_DIR, state_file_for
from tests.support.gateways import gateway_settings
from tests.support.orchestrator import free_port
from tests.support.paths import REPO
from tests.support.shared_memory import (
    MANAGEMENT_TOKEN,
    TOKEN_A,
    TOKEN_B,
    ShmObject,
    X,
    bearer,
    channel_as,
    code_of,
    failure_of,
    new_object,
    request_x_from_region,
    shm_params,
    two_apps,
)
from tests.support.v2_models import two_heads

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs /dev/shm (Linux)")
Stub = pb_grpc.GRPCInferenceServiceStub


@pytest.fixture
def shm() -> Iterator[list[ShmObject]]:
    made: list[ShmObject] = []
    yield made
    for obj in made:
        obj.remove()


@dataclass
class Apps:
    gateway: Gateway
    a: Stub  # app "a"'s token
    b: Stub  # app "b"'s token (same uid as "a": it is this test process)
    anonymous: Stub  # no credential

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.grpc_port}"


async def start_gateway(tmp_path: Path, **overrides: object) -> Gateway:
    two_heads(tmp_path / "models" / "twoheads" / "1" / "model.onnx")
    gw = Gateway(gateway_settings(tmp_path / "models", default_model="twoheads", **overrides))
    await gw.start()
    await gw.wait_for_models()
    return gw


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Apps]:
    gw = await start_gateway(
        tmp_path, shared_memory_app_tokens=two_apps(tmp_path), management_token=MANAGEMENT_TOKEN
    )
    target = f"127.0.0.1:{gw.grpc_port}"
    try:
        async with (
            channel_as(target, TOKEN_A) as a,
            channel_as(target, TOKEN_B) as b,
            grpc.aio.insecure_channel(target) as anonymous,
        ):
            yield Apps(gw, Stub(a), Stub(b), Stub(anonymous))
    finally:
        await gw.stop()


def register(name: str, obj: ShmObject, size: int = 64) -> pb.SystemSharedMemoryRegisterRequest:
    return pb.SystemSharedMemoryRegisterRequest(name=name, key=obj.key, byte_size=size)


async def test_without_a_configured_credential_registration_says_what_to_configure(
    tmp_path: Path, shm: list[ShmObject]
) -> None:
    gw = await start_gateway(tmp_path)
    obj = new_object(shm, 64)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as channel:
            refused = await failure_of(Stub(channel).SystemSharedMemoryRegister(register("a", obj)))
    finally:
        await gw.stop()
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "--shared-memory-app-tokens FILE" in (refused.details() or "")


async def test_registration_needs_a_valid_credential(apps: Apps, shm: list[ShmObject]) -> None:
    obj = new_object(shm, 64)
    missing = await failure_of(apps.anonymous.SystemSharedMemoryRegister(register("a", obj)))
    assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in (missing.details() or "")
    wrong = apps.anonymous.SystemSharedMemoryRegister(
        register("a", obj), metadata=bearer("not-a-token-of-this-gateway")
    )
    assert await code_of(wrong) == grpc.StatusCode.PERMISSION_DENIED
    for call in (
        apps.anonymous.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest()),
        apps.anonymous.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest()),
        apps.anonymous.ModelInfer(request_x_from_region("a")),
    ):
        assert await code_of(call) == grpc.StatusCode.UNAUTHENTICATED
    await apps.a.SystemSharedMemoryRegister(register("a", obj))
    # The management token registers too (objects of the gateway's own user).
    managed = apps.anonymous.SystemSharedMemoryRegister(
        register("ops", obj), metadata=bearer(MANAGEMENT_TOKEN)
    )
    await managed
    everything = await apps.anonymous.SystemSharedMemoryStatus(
        pb.SystemSharedMemoryStatusRequest(), metadata=bearer(MANAGEMENT_TOKEN)
    )
    assert set(everything.regions) == {"a", "ops"}
    mine = await apps.a.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(mine.regions) == {"a"}


async def test_an_object_of_another_user_is_refused(apps: Apps, shm: list[ShmObject]) -> None:
    if os.geteuid() != 0:
        pytest.skip("making an object owned by another uid needs root (os.chown)")
    obj = new_object(shm, 64)
    os.chown(obj.path, 65534, 65534)  # nobody
    refused = await failure_of(apps.a.SystemSharedMemoryRegister(register("theirs", obj)))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "belongs to uid 65534" in (refused.details() or "")


async def test_one_app_cannot_use_anothers_regions(apps: Apps, shm: list[ShmObject]) -> None:
    source, sink = new_object(shm, 64), new_object(shm, 64)
    source.put(0, X.tobytes())
    sink.put(0, b"app a's bytes!!!")
    await apps.a.SystemSharedMemoryRegister(register("a-in", source))
    await apps.a.SystemSharedMemoryRegister(register("a-out", sink))
    # B reads A's input region: refused.
    assert await code_of(apps.b.ModelInfer(request_x_from_region("a-in"))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # B has outputs written into A's region (its own input inline): refused, bytes intact.
    b_source = new_object(shm, 64)
    b_source.put(0, X.tobytes())
    await apps.b.SystemSharedMemoryRegister(register("b-in", b_source))
    into_a = request_x_from_region("b-in")
    into_a.outputs.add(name="doubled", parameters=shm_params("a-out", 64))
    assert await code_of(apps.b.ModelInfer(into_a)) == grpc.StatusCode.PERMISSION_DENIED
    assert sink.get(0, 16) == b"app a's bytes!!!"
    # B neither sees, unregisters nor takes over A's names.
    seen = await apps.b.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(seen.regions) == {"b-in"}
    named = apps.b.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="a-in"))
    assert await code_of(named) == grpc.StatusCode.PERMISSION_DENIED
    await apps.b.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest())  # all: B's
    taken = await failure_of(apps.b.SystemSharedMemoryRegister(register("a-out", b_source)))
    assert taken.code() == grpc.StatusCode.ALREADY_EXISTS
    assert sink.key not in (taken.details() or "")
    # A's own call still works, both ways.
    own = request_x_from_region("a-in")
    own.outputs.add(name="doubled", parameters=shm_params("a-out", 64))
    await apps.a.ModelInfer(own)
    np.testing.assert_array_equal(np.frombuffer(sink.get(0, 48), np.float32).reshape(4, 3), 2 * X)
    mine = await apps.a.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(mine.regions) == {"a-in", "a-out"}


async def test_the_gateways_own_files_are_refused(
    apps: Apps, shm: list[ShmObject], tmp_path: Path
) -> None:
    state = state_file_for("127.0.0.1", apps.gateway.grpc_port)
    assert state.parent == SHM_DIR
    link = SHM_DIR / f"edge-test-link-{os.getpid()}"
    outside = tmp_path / "outside"
    outside.write_bytes(bytes(64))
    links = [(link, state), (link.with_name(link.name + "-out"), outside)]
    hard = link.with_name(link.name + "-hard")
    try:
        for path, target in links:
            path.symlink_to(target)
        os.link(state, hard)  # a second name for the state file, under an app's name
        keys = [f"/{state.name}", f"/{state.with_suffix('.lock').name}"]
        keys += [f"/{path.name}" for path, _ in links] + [f"/{hard.name}"]
        for key in keys:
            request = pb.SystemSharedMemoryRegisterRequest(name="x", key=key, byte_size=8)
            refused = await failure_of(apps.a.SystemSharedMemoryRegister(request))
            assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, (key, refused.details())
    finally:
        for path in [*(p for p, _ in links), hard]:
            path.unlink(missing_ok=True)
    # The gateway keeps answering shared-memory calls.
    obj = new_object(shm, 64)
    obj.put(0, X.tobytes())
    await apps.a.SystemSharedMemoryRegister(register("in", obj))
    answer = await apps.a.ModelInfer(request_x_from_region("in"))
    np.testing.assert_array_equal(
        np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(4, 3), 2 * X
    )


async def test_a_corrupt_state_file_is_recovered_from(apps: Apps, shm: list[ShmObject]) -> None:
    obj = new_object(shm, 64)
    await apps.a.SystemSharedMemoryRegister(register("in", obj))
    state = state_file_for("127.0.0.1", apps.gateway.grpc_port)
    state.write_text("{not json")  # what a write into the state file left behind
    status = await apps.a.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert not status.regions  # started over: apps register again
    await apps.a.SystemSharedMemoryRegister(register("in", obj))
    status = await apps.a.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(status.regions) == {"in"}
    assert '"in"' in state.read_text()


@pytest.fixture
async def front(apps: Apps) -> AsyncIterator[str]:
    """deploy/haproxy/edge-gateway.cfg in front of the gateway (as test_front_proxy.py)."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is installed by `make test` (apt)")
    port = free_port()
    deploy = REPO / "deploy" / "haproxy"
    env = {
        **os.environ,
        "EDGE_FRONT_DIR": str(deploy),
        "EDGE_FRONT_BIND": f"127.0.0.1:{port}",
        "EDGE_GATEWAY_ADDR": apps.target,
        "EDGE_FRONT_MAXCONN": "8",
    }
    proxy = subprocess.Popen(  # noqa: ASYNC220 - a daemon started once, not awaited
        ["haproxy", "-f", str(deploy / "edge-gateway.cfg"), "-db"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proxy.poll() is None, proxy.communicate()[1]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "haproxy never listened"
            await asyncio.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proxy.kill()
        proxy.wait()


async def test_the_front_never_passes_registry_calls(
    apps: Apps, front: str, shm: list[ShmObject]
) -> None:
    obj = new_object(shm, 64)
    obj.put(0, X.tobytes())
    await apps.a.SystemSharedMemoryRegister(register("in", obj))  # directly: an app on the board
    async with channel_as(front, TOKEN_A) as channel:
        through = Stub(channel)
        for call in (
            through.SystemSharedMemoryRegister(register("again", obj)),
            through.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest()),
            through.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest()),
        ):
            assert await code_of(call) == grpc.StatusCode.PERMISSION_DENIED  # HTTP 403
    # A remote caller naming a region through the front has no app token: the gateway
    # sees loopback, yet the credential check refuses it.
    async with grpc.aio.insecure_channel(front) as channel:
        remote = Stub(channel)
        assert await code_of(remote.ModelInfer(request_x_from_region("in"))) == (
            grpc.StatusCode.UNAUTHENTICATED
        )
        guessed = remote.ModelInfer(request_x_from_region("in"), metadata=bearer("guess" * 5))
        assert await code_of(guessed) == grpc.StatusCode.PERMISSION_DENIED
    status = await apps.a.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(status.regions) == {"in"}
