"""V2 system shared-memory extension: real /dev/shm objects, a real gateway on loopback.

Inputs read from and outputs written to shared memory must give the same answers as
inline bytes (the model's own arithmetic: doubled = 2x, negated = -x, k_next = k + 1),
and every misuse gets its own status while the gateway keeps serving.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_contracts.proto.inference import grpc_service_pb2_grpc as pb_grpc
from edge_contracts.status import status_for
from edge_server.app import Gateway
from edge_server.errors import AccessDenied, QuotaExceeded, RegionNotFound
from edge_server.grpc.shared_memory_access import SharedMemoryAccess, is_local_peer
from edge_server.v2.shared_memory import SHM_DIR, SharedMemoryRegistry
from edge_server.v2.shared_memory_apps import Owner, fingerprint
from tests.support.gateways import gateway_settings
from tests.support.shared_memory import (
    TOKEN_A,
    ShmObject,
    X,
    bearer,
    channel_as,
    code_of,
    new_object,
    request_x_from_region,
    shm_params,
    two_apps,
)
from tests.support.v2_models import two_heads

pytestmark = pytest.mark.skipif(not SHM_DIR.is_dir(), reason="needs /dev/shm (Linux)")


@pytest.fixture
def shm() -> Iterator[list[ShmObject]]:
    made: list[ShmObject] = []
    yield made
    for obj in made:
        obj.remove()


@pytest.fixture
async def v2(tmp_path: Path) -> AsyncIterator[pb_grpc.GRPCInferenceServiceStub]:
    """A gateway with app tokens (tests/support/shared_memory.py), called as app "a"."""
    two_heads(tmp_path / "models" / "twoheads" / "1" / "model.onnx")
    settings = gateway_settings(
        tmp_path / "models", default_model="twoheads", shared_memory_app_tokens=two_apps(tmp_path)
    )
    gw = Gateway(settings)
    await gw.start()
    await gw.wait_for_models()
    async with channel_as(f"127.0.0.1:{gw.grpc_port}", TOKEN_A) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    await gw.stop()


async def test_inputs_and_outputs_through_shared_memory(
    v2: pb_grpc.GRPCInferenceServiceStub, shm: list[ShmObject]
) -> None:
    source = new_object(shm, 4096)
    source.put(100, X.tobytes())
    await v2.SystemSharedMemoryRegister(
        pb.SystemSharedMemoryRegisterRequest(name="in", key=source.key, offset=64, byte_size=1024)
    )
    sink = new_object(shm, 256)
    await v2.SystemSharedMemoryRegister(
        pb.SystemSharedMemoryRegisterRequest(name="out", key=sink.key, byte_size=256)
    )
    request = request_x_from_region("in", offset=36)  # 64 + 36 = byte 100 of the object
    request.outputs.add(name="negated")
    request.outputs.add(name="doubled", parameters=shm_params("out", 64, offset=8))
    response = await v2.ModelInfer(request)

    negated, doubled = response.outputs
    assert (negated.name, doubled.name) == ("negated", "doubled")
    # Inline outputs keep their raw contents; the shared-memory one has none.
    assert len(response.raw_output_contents) == 1
    np.testing.assert_array_equal(
        np.frombuffer(response.raw_output_contents[0], np.float32).reshape(4, 3), -X
    )
    assert doubled.parameters["shared_memory_region"].string_param == "out"
    assert doubled.parameters["shared_memory_byte_size"].int64_param == 48
    np.testing.assert_array_equal(np.frombuffer(sink.get(8, 48), np.float32).reshape(4, 3), 2 * X)
    assert sink.get(0, 8) == bytes(8)  # nothing written before the offset

    # The app rewrites the same region for the next frame: the gateway reads it anew.
    source.put(100, (X + 1).tobytes())
    again = await v2.ModelInfer(request)
    np.testing.assert_array_equal(
        np.frombuffer(again.raw_output_contents[0], np.float32).reshape(4, 3), -(X + 1)
    )

    status = await v2.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert set(status.regions) == {"in", "out"}
    described = status.regions["in"]
    assert (described.key, described.offset, described.byte_size) == (source.key, 64, 1024)
    metadata = await v2.ServerMetadata(pb.ServerMetadataRequest())
    assert "system_shared_memory" in metadata.extensions


async def test_registration_mistakes(
    v2: pb_grpc.GRPCInferenceServiceStub, shm: list[ShmObject]
) -> None:
    obj = new_object(shm, 128)
    register = v2.SystemSharedMemoryRegister
    await register(pb.SystemSharedMemoryRegisterRequest(name="a", key=obj.key, byte_size=128))
    cases = {
        "same name twice": (
            pb.SystemSharedMemoryRegisterRequest(name="a", key=obj.key, byte_size=64),
            grpc.StatusCode.ALREADY_EXISTS,
        ),
        "no such object": (
            pb.SystemSharedMemoryRegisterRequest(name="b", key="/edge-test-none", byte_size=8),
            grpc.StatusCode.NOT_FOUND,
        ),
        "a path, not a name": (
            pb.SystemSharedMemoryRegisterRequest(name="b", key="/../etc/passwd", byte_size=8),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "dots only": (
            pb.SystemSharedMemoryRegisterRequest(name="b", key="/..", byte_size=8),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "larger than the object": (
            pb.SystemSharedMemoryRegisterRequest(name="b", key=obj.key, offset=64, byte_size=65),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "no size": (
            pb.SystemSharedMemoryRegisterRequest(name="b", key=obj.key),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        "no name": (
            pb.SystemSharedMemoryRegisterRequest(key=obj.key, byte_size=8),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    }
    for label, (request, expected) in cases.items():
        assert await code_of(register(request)) == expected, label
    unknown = v2.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest(name="b"))
    assert await code_of(unknown) == grpc.StatusCode.NOT_FOUND
    # Unregistering is idempotent; an empty name forgets every region.
    await v2.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="zzz"))
    await v2.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest())
    status = await v2.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest())
    assert not status.regions


async def test_inference_mistakes_leave_the_gateway_serving(
    v2: pb_grpc.GRPCInferenceServiceStub, shm: list[ShmObject]
) -> None:
    obj = new_object(shm, 256)
    obj.put(0, X.tobytes())
    await v2.SystemSharedMemoryRegister(
        pb.SystemSharedMemoryRegisterRequest(name="in", key=obj.key, byte_size=64)
    )
    not_registered = request_x_from_region("nope")
    past_the_end = request_x_from_region("in", offset=32)  # 32 + 48 > 64
    raw_for_both = request_x_from_region("in")
    raw_for_both.raw_input_contents.insert(0, X.tobytes())
    small_output = request_x_from_region("in")
    small_output.outputs.add(name="doubled", parameters=shm_params("in", 16))
    no_size = request_x_from_region("in")
    del no_size.inputs[0].parameters["shared_memory_byte_size"]
    wrong_type = request_x_from_region("in")
    wrong_type.inputs[0].parameters["shared_memory_region"].int64_param = 3
    cases = {
        "unregistered region": (not_registered, grpc.StatusCode.NOT_FOUND),
        "range past the region": (past_the_end, grpc.StatusCode.INVALID_ARGUMENT),
        "raw contents for a shared-memory input": (raw_for_both, grpc.StatusCode.INVALID_ARGUMENT),
        "output region too small": (small_output, grpc.StatusCode.INVALID_ARGUMENT),
        "no byte size": (no_size, grpc.StatusCode.INVALID_ARGUMENT),
        "region name not a string": (wrong_type, grpc.StatusCode.INVALID_ARGUMENT),
    }
    for label, (request, expected) in cases.items():
        assert await code_of(v2.ModelInfer(request)) == expected, label

    # The app shrinks its object after registering: an error, not a SIGBUS.
    os.truncate(obj.path, 16)
    shrunk = await code_of(v2.ModelInfer(request_x_from_region("in")))
    assert shrunk == grpc.StatusCode.INVALID_ARGUMENT
    obj.put(0, X.tobytes())  # grows it back
    answer = await v2.ModelInfer(request_x_from_region("in"))
    np.testing.assert_array_equal(
        np.frombuffer(answer.raw_output_contents[0], np.float32).reshape(4, 3), 2 * X
    )

    await v2.SystemSharedMemoryUnregister(pb.SystemSharedMemoryUnregisterRequest(name="in"))
    gone = await code_of(v2.ModelInfer(request_x_from_region("in")))
    assert gone == grpc.StatusCode.NOT_FOUND


async def test_off_means_unimplemented(tmp_path: Path, shm: list[ShmObject]) -> None:
    two_heads(tmp_path / "models" / "twoheads" / "1" / "model.onnx")
    settings = gateway_settings(
        tmp_path / "models", default_model="twoheads", shared_memory="off",
        shared_memory_app_tokens=two_apps(tmp_path),
    )  # fmt: skip
    gw = Gateway(settings)
    await gw.start()
    await gw.wait_for_models()
    obj = new_object(shm, 64)
    try:
        async with channel_as(f"127.0.0.1:{gw.grpc_port}", TOKEN_A) as channel:
            v2 = pb_grpc.GRPCInferenceServiceStub(channel)
            register = v2.SystemSharedMemoryRegister(
                pb.SystemSharedMemoryRegisterRequest(name="a", key=obj.key, byte_size=64)
            )
            assert await code_of(register) == grpc.StatusCode.UNIMPLEMENTED
            infer = v2.ModelInfer(request_x_from_region("a"))
            assert await code_of(infer) == grpc.StatusCode.UNIMPLEMENTED
            metadata = await v2.ServerMetadata(pb.ServerMetadataRequest())
            assert "system_shared_memory" not in metadata.extensions
    finally:
        await gw.stop()


class Caller:
    """The two ServicerContext methods the access check reads (tests bind loopback only,
    so a call from another machine cannot be made for real here)."""

    def __init__(self, peer: str, token: str = TOKEN_A) -> None:
        self._peer = peer
        self._metadata = bearer(token)

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


APP_A = Owner(fingerprint(TOKEN_A), os.getuid(), "a")


def test_local_mode_refuses_callers_from_another_machine(tmp_path: Path) -> None:
    registry = SharedMemoryRegistry(4)
    access = SharedMemoryAccess(registry, "local", app_tokens={APP_A.credential: APP_A})
    remote = access.for_caller(Caller("ipv4:192.168.1.20:40000"))
    with pytest.raises(AccessDenied) as refused:
        remote()
    status = status_for(refused.value)
    assert status.code == grpc.StatusCode.PERMISSION_DENIED
    assert "192.168.1.20" in status.message and "--shared-memory on" in status.message
    assert access.for_caller(Caller("ipv4:127.0.0.1:1"))().owner == APP_A
    anyone = SharedMemoryAccess(registry, "on", app_tokens={APP_A.credential: APP_A})
    assert anyone.for_caller(Caller("ipv4:10.1.1.1:1"))().owner == APP_A


def test_local_peers() -> None:
    local = ["ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/tmp/s", "ipv6:[::ffff:127.0.0.1]:1"]
    remote = ["ipv4:10.0.0.5:5000", "ipv6:[fe80::1]:5000", "ipv4:128.0.0.1:1"]
    assert all(is_local_peer(peer) for peer in local)
    assert not any(is_local_peer(peer) for peer in remote)


def test_registrations_are_shared_by_the_gateways_processes(
    tmp_path: Path, shm: list[ShmObject]
) -> None:
    """--workers: one state file; whichever process a connection reaches knows the region."""
    state = tmp_path / "regions.json"
    primary, replica = SharedMemoryRegistry(8), SharedMemoryRegistry(8)
    primary.attach(state, fresh=True)
    replica.attach(state, fresh=False)
    obj = new_object(shm, 64)
    obj.put(0, b"frame-1!")
    primary.register("cam", obj.key, 0, 64, APP_A)
    assert replica.read("cam", 0, 8, "input", APP_A) == b"frame-1!"
    replica.write("cam", 8, 8, b"answer!!", "output", APP_A)
    assert primary.read("cam", 8, 8, "input", APP_A) == b"answer!!"
    replica.unregister("cam", APP_A)
    with pytest.raises(RegionNotFound):
        primary.read("cam", 0, 8, "input", APP_A)
    # A restarted primary starts empty; its stop removes the state.
    primary.register("cam", obj.key, 0, 64, APP_A)
    restarted = SharedMemoryRegistry(8)
    restarted.attach(state, fresh=True)
    assert replica.status("", APP_A) == []
    restarted.detach(remove=True)
    primary.detach(remove=False)
    replica.detach(remove=False)
    assert not state.exists()


def test_region_limit(tmp_path: Path, shm: list[ShmObject]) -> None:
    registry = SharedMemoryRegistry(2)
    registry.attach(tmp_path / "regions.json", fresh=True)
    obj = new_object(shm, 64)
    registry.register("a", obj.key, 0, 8, APP_A)
    registry.register("b", obj.key, 8, 8, APP_A)
    with pytest.raises(QuotaExceeded):
        registry.register("c", obj.key, 16, 8, APP_A)
    registry.detach(remove=True)
