"""--workers 2: two gateway processes on one port, one model lifecycle.

Real `edge-server` processes: connections spread over both, a version pushed to the
primary's management port reaches every connection, an unload and a load follow,
a killed replica comes back, and no replica outlives its primary. Without
--management-port, management answers on the shared port whichever process the
connection reached: a replica relays it to the primary.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)
from edge_contracts.proto.inference import grpc_service_pb2, grpc_service_pb2_grpc
from edge_server.v2.shared_memory import state_file_for
from edge_server.workers.metrics_merge import merge_expositions
from edge_server.workers.private_folder import SOCKET_NAME
from tests.support.bundles import build_bundle, make_keys, push
from tests.support.lifecycle import GRAY_MANIFEST, gray_png
from tests.support.model_factory import build_model_root, linear_classifier
from tests.support.processes import ServerProcess
from tests.support.shared_memory import TOKEN_A, bearer, channel_as, two_apps

pytestmark = pytest.mark.slow

CONNECTIONS = 16  # P(all on one of 2 processes) = 2 * 0.5**16: never in practice
WORKER_UP = re.compile(r"worker 1 \(pid (\d+)\) is serving")
MANAGEMENT = re.compile(r"management on port (\d+)")
AUTOMATIC = re.compile(r"workers: (\d+) \(automatic: (\d+) cores")
RELAY = re.compile(r"relay management calls to unix:(\S+)")
PRIVATE = re.compile(r"the workers' private sockets are in (\S+)")


def start(
    root: Path,
    public_key: Path,
    *extra: str,
    management: tuple[str, ...] = ("--management-port", "0"),
) -> ServerProcess:
    server = ServerProcess(
        ["--model-root", str(root), "--trusted-keys", str(public_key), "--default-model", "gray",
         "--workers", "2", *management, "--rollback-window-seconds", "0", *extra]
    )  # fmt: skip
    server.wait_serving()
    wait_for(lambda: replica_pid(server) is not None, "worker 1 never came up", server)
    return server


def wait_for(condition: object, message: str, server: ServerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(message + ":\n" + "".join(server.log))


def replica_pid(server: ServerProcess) -> int | None:
    pids = [int(m[1]) for line in server.log if (m := WORKER_UP.search(line))]
    return pids[-1] if pids else None


def management_port(server: ServerProcess) -> int:
    return next(int(m[1]) for line in server.log if (m := MANAGEMENT.search(line)))


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's parent may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def predict_counts(server: ServerProcess) -> dict[str, float]:
    """OK Predict calls per worker, from the primary's merged /metrics."""
    return request_counts(server, "Predict")


def request_counts(server: ServerProcess, method: str) -> dict[str, float]:
    """OK calls of ``method`` per worker, from the primary's merged /metrics."""
    page = urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/metrics", timeout=10)
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(page.read().decode()):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "edge_requests_total" and labels.get("method") == method:
                worker = labels["worker"]
                counts[worker] = counts.get(worker, 0) + (sample.value * (labels["code"] == "OK"))
    return counts


async def versions_on_new_connections(target: str) -> list[str]:
    """The version each of CONNECTIONS fresh TCP connections is answered with."""

    async def one() -> str:
        options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            try:
                request = inference_pb2.PredictRequest(image=gray_png())
                reply = await stub.Predict(request, timeout=10)
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            return str(reply.model_version)

    return list(await asyncio.gather(*(one() for _ in range(CONNECTIONS))))


async def converge(target: str, expected: str, server: ServerProcess) -> None:
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = await versions_on_new_connections(target)
        if seen == [expected] * CONNECTIONS:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"connections answered {seen}, wanted {expected}:\n" + "".join(server.log))


async def test_workers_share_the_port_and_follow_the_primary(tmp_path: Path) -> None:
    root = build_model_root(tmp_path / "models")
    key, public = make_keys(tmp_path / "keys")
    model = linear_classifier(tmp_path / "src" / "model.onnx", seed=44)
    bundle = build_bundle(tmp_path / "g3.edgebundle", model, "gray", "3", key, GRAY_MANIFEST)
    server = start(root, public)
    try:
        assert await versions_on_new_connections(server.target) == ["2"] * CONNECTIONS
        counts = predict_counts(server)
        assert set(counts) == {"0", "1"}, counts  # both processes answered
        assert sum(counts.values()) == CONNECTIONS
        async with grpc.aio.insecure_channel(server.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await model_pb2_grpc.ModelServiceStub(channel).ListModels(
                    model_pb2.ListModelsRequest(), timeout=5
                )
            assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
        management = f"127.0.0.1:{management_port(server)}"
        async with grpc.aio.insecure_channel(management) as channel:
            responses, _ = await push(model_pb2_grpc.ModelServiceStub(channel), bundle)
            assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE, responses[-1]
            await converge(server.target, "3", server)
            repository = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
            await repository.RepositoryModelUnload(
                grpc_service_pb2.RepositoryModelUnloadRequest(model_name="gray"), timeout=10
            )
            await converge(server.target, "UNAVAILABLE", server)
            await repository.RepositoryModelLoad(
                grpc_service_pb2.RepositoryModelLoadRequest(model_name="gray"), timeout=30
            )
            await converge(server.target, "3", server)
        assert server.terminate() == 0
    finally:
        server.kill()


async def test_killed_replica_restarts_and_none_outlives_the_primary(tmp_path: Path) -> None:
    root = build_model_root(tmp_path / "models")
    _, public = make_keys(tmp_path / "keys")
    server = start(root, public)
    try:
        first = replica_pid(server)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: replica_pid(server) not in (None, first), "no restart", server)
        await converge(server.target, "2", server)
        second = replica_pid(server)
        assert second is not None
        assert server.terminate() == 0  # SIGTERM: the primary stops its replicas
        assert not alive(second)

        server = start(root, public)
        orphan = replica_pid(server)
        assert orphan is not None
        server.proc.kill()  # SIGKILL: the replica sees its stdin close
        server.proc.wait(10)
        wait_for(lambda: not alive(orphan), "the replica outlived its primary", server, 15)
        # A killed primary could not remove its private folder: the test does.
        shutil.rmtree(next(m[1] for line in server.log if (m := PRIVATE.search(line))))
    finally:
        server.kill()
        for pid in filter(None, [replica_pid(server)]):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_shared_memory_regions_serve_every_worker(tmp_path: Path) -> None:
    """A region registered over one connection answers on every other, whichever
    process the kernel gave it, with the same output as the bytes sent inline."""
    root = build_model_root(tmp_path / "models")
    _key, public = make_keys(tmp_path / "keys")
    x = np.random.default_rng(5).normal(size=(1, 2, 4, 4)).astype(np.float32)
    shm_object = Path("/dev/shm") / f"edge-test-workers-{os.getpid()}"
    shm_object.write_bytes(x.tobytes())
    server = start(root, public, "--shared-memory-app-tokens", str(two_apps(tmp_path)))
    try:
        async with channel_as(server.target, TOKEN_A) as channel:
            stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
            await stub.SystemSharedMemoryRegister(
                grpc_service_pb2.SystemSharedMemoryRegisterRequest(
                    name="cam", key=f"/{shm_object.name}", byte_size=x.nbytes
                )
            )
            inline = await stub.ModelInfer(v2_request(x.tobytes()))

        async def one() -> bytes:
            options = [("grpc.use_local_subchannel_pool", 1)]  # a connection of its own
            async with grpc.aio.insecure_channel(server.target, options=options) as channel:
                stub = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
                request = v2_request(None, x.nbytes)
                reply = await stub.ModelInfer(request, timeout=10, metadata=bearer(TOKEN_A))
                return bytes(reply.raw_output_contents[0])

        answers = await asyncio.gather(*(one() for _ in range(CONNECTIONS)))
        assert answers == [inline.raw_output_contents[0]] * CONNECTIONS
        by_worker = request_counts(server, "ModelInfer")
        assert set(by_worker) == {"0", "1"} and min(by_worker.values()) > 0, by_worker
        state = state_file_for("127.0.0.1", server.grpc_port)
        assert state.exists()
        assert server.terminate() == 0
        assert not state.exists()  # the primary's stop removes the registrations
    finally:
        server.kill()
        shm_object.unlink(missing_ok=True)


def v2_request(data: bytes | None, shm_size: int = 0) -> grpc_service_pb2.ModelInferRequest:
    """tensoronly's input inline (``data``) or from the region "cam" (``shm_size`` bytes)."""
    pb = grpc_service_pb2
    parameters = {}
    if data is None:
        parameters = {
            "shared_memory_region": pb.InferParameter(string_param="cam"),
            "shared_memory_byte_size": pb.InferParameter(int64_param=shm_size),
        }
    request = pb.ModelInferRequest(
        model_name="tensoronly",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="input", datatype="FP32", shape=[1, 2, 4, 4], parameters=parameters
            )
        ],
    )
    if data is not None:
        request.raw_input_contents.append(data)
    return request


async def channel_on_worker(server: ServerProcess, worker: str) -> grpc.aio.Channel:
    """A connection of its own that the kernel gave to ``worker`` ("0": the primary)."""
    for _ in range(64):  # P(64 misses of one of 2 processes) = 0.5**64
        channel = grpc.aio.insecure_channel(
            server.target, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        before = predict_counts(server).get(worker, 0)
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await stub.Predict(inference_pb2.PredictRequest(image=gray_png()), timeout=10)
        if predict_counts(server).get(worker, 0) > before:
            return channel
        await channel.close()
    raise AssertionError(f"no connection reached worker {worker}:\n" + "".join(server.log))


async def test_management_on_the_shared_port_reaches_the_primary_from_a_replica(
    tmp_path: Path,
) -> None:
    """No --management-port: a push, a list, a V2 unload and load sent over a
    connection the replica holds are relayed to the primary; each call ends once every
    worker follows (the next connection, whichever process, sees the change); a refused
    call comes back with its status and message."""
    root = build_model_root(tmp_path / "models")
    key, public = make_keys(tmp_path / "keys")
    model = linear_classifier(tmp_path / "src" / "model.onnx", seed=45)
    bundle = build_bundle(tmp_path / "g3.edgebundle", model, "gray", "3", key, GRAY_MANIFEST)
    server = start(root, public, "--management-token", "s3cret", management=())
    token = (("authorization", "Bearer s3cret"),)
    try:
        assert management_port(server) == server.grpc_port
        relay_socket = next(Path(m[1]) for line in server.log if (m := RELAY.search(line)))
        assert relay_socket.name == SOCKET_NAME and relay_socket.is_socket()
        assert relay_socket.parent.stat().st_mode & 0o077 == 0  # this user's only
        channel = await channel_on_worker(server, "1")
        async with channel:
            models = model_pb2_grpc.ModelServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await models.ListModels(model_pb2.ListModelsRequest(), timeout=5)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "management token" in (refused.value.details() or "")
            listed = await models.ListModels(model_pb2.ListModelsRequest(), metadata=token)
            assert "gray" in {m.name for m in listed.models}
            responses, _ = await push(models, bundle, metadata=token)
            assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE, responses[-1]
            # The call ended once every worker followed: read your writes on any connection.
            assert await versions_on_new_connections(server.target) == ["3"] * CONNECTIONS
            repository = grpc_service_pb2_grpc.GRPCInferenceServiceStub(channel)
            await repository.RepositoryModelUnload(
                grpc_service_pb2.RepositoryModelUnloadRequest(model_name="gray"),
                timeout=10,
                metadata=token,
            )
            assert await versions_on_new_connections(server.target) == ["UNAVAILABLE"] * CONNECTIONS
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await repository.RepositoryModelLoad(
                    grpc_service_pb2.RepositoryModelLoadRequest(model_name="nope"),
                    timeout=30,
                    metadata=token,
                )
            assert missing.value.code() is grpc.StatusCode.NOT_FOUND
            await repository.RepositoryModelLoad(
                grpc_service_pb2.RepositoryModelLoadRequest(model_name="gray"),
                timeout=30,
                metadata=token,
            )
            assert await versions_on_new_connections(server.target) == ["3"] * CONNECTIONS
        assert server.terminate() == 0
        assert not relay_socket.exists()  # the primary's stop removes it
    finally:
        server.kill()


async def test_no_flags_start_one_process_per_core(tmp_path: Path) -> None:
    """The default (--workers 0): as many processes as cores here (memory is plenty),
    every one serving, management on the one port."""
    root = build_model_root(tmp_path / "models")
    cores = len(os.sched_getaffinity(0))
    server = ServerProcess(["--model-root", str(root), "--default-model", "gray"])
    try:
        server.wait_serving()
        chosen = next(m for line in server.log if (m := AUTOMATIC.search(line)))
        assert int(chosen[1]) == cores, chosen[0]
        deadline = time.monotonic() + 30  # replicas join once their models are loaded
        while cores > 1 and set(predict_counts(server)) != {str(i) for i in range(cores)}:
            assert time.monotonic() < deadline, "not every worker answered:\n" + "".join(server.log)
            assert set(await versions_on_new_connections(server.target)) == {"2"}
        assert management_port(server) == server.grpc_port
        assert server.terminate() == 0
    finally:
        server.kill()


def test_metrics_of_workers_merge_with_a_worker_label() -> None:
    from edge_server.metrics import GatewayMetrics

    primary, replica = GatewayMetrics(), GatewayMetrics()
    for metrics, calls in ((primary, 2), (replica, 5)):
        for _ in range(calls):
            metrics.observe_request("Predict", "m", "1", "OK", 0.001)
    page = merge_expositions([("0", primary.render()), ("1", replica.render())]).decode()
    samples = {
        s.labels["worker"]: s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "edge_requests_total"
    }
    assert samples == {"0": 2.0, "1": 5.0}
    assert page.count("# TYPE edge_requests_total counter") == 1
