"""The one error boundary (edge_contracts/rpc_boundary.py) over a real grpc.aio server.

A small probe service has one method of each shape (unary, server-streaming,
client-streaming, bidi); each request names what the method does: answer, raise a domain
error, raise something unexpected, or abort on its own. Then the real gateway's ModelUpdate
meets a disk fault and the caller sees INTERNAL with the correlation id the log has.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from cloud_orchestrator.grpc.servicer import OrchestratorServicer
from edge_contracts.proto.edge.v1 import (
    inference_pb2_grpc,
    model_pb2_grpc,
    orchestrator_pb2_grpc,
)
from edge_contracts.proto.inference import grpc_service_pb2_grpc
from edge_contracts.rpc_boundary import MARKER, rpc_boundary
from edge_server.errors import Overloaded
from edge_server.grpc.inference_servicer import InferenceServicer
from edge_server.grpc.model_servicer import ModelServicer
from edge_server.grpc.v2_servicer import V2Servicer
from tests.support.bundles import push
from tests.support.lifecycle import start_harness, stop_harness

SERVICE = "probe.Probe"
CORRELATION = re.compile(r"correlation id ([0-9a-f]{12})")


async def act(what: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if what == b"overloaded":
        raise Overloaded("queue full", retry_after_ms=75)
    if what == b"unexpected":
        raise RuntimeError("a private detail")
    if what == b"abort":
        await context.abort(grpc.StatusCode.OUT_OF_RANGE, "aborted by the method itself")
    return b"ok:" + what


class Probe:
    @rpc_boundary
    async def Unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await act(request, context)

    @rpc_boundary
    async def ServerStream(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        yield b"first"  # the failure comes after a message has gone out
        yield await act(request, context)

    @rpc_boundary
    async def ClientStream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        last = b""
        async for request in requests:
            last = await act(request, context)
        return last

    @rpc_boundary
    async def Bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield await act(request, context)


class Writer:
    """Streams with ``context.write`` until the client goes (as FetchModel does)."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()
        self.written = 0

    @rpc_boundary
    async def Endless(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        try:
            while True:
                # As FetchModel: 64 KiB chunks, each write bounded in time.
                await asyncio.wait_for(context.write(b"c" * 65536), 10)
                self.written += 1
        finally:
            self.ended.set()


@pytest.fixture
async def writer() -> AsyncIterator[tuple[grpc.aio.Channel, Writer]]:
    servicer = Writer()
    handlers = {"Endless": grpc.unary_stream_rpc_method_handler(servicer.Endless)}
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, servicer
    await server.stop(None)


@pytest.fixture
async def probe() -> AsyncIterator[grpc.aio.Channel]:
    servicer = Probe()
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(servicer.Unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(servicer.ServerStream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(servicer.ClientStream),
        "Bidi": grpc.stream_stream_rpc_method_handler(servicer.Bidi),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


async def call(channel: grpc.aio.Channel, shape: str, what: bytes) -> list[bytes]:
    """Every message the call answered; raises the call's error status."""
    method = f"/{SERVICE}/{shape}"
    if shape == "Unary":
        return [await channel.unary_unary(method)(what)]
    if shape == "ServerStream":
        return [m async for m in channel.unary_stream(method)(what)]
    if shape == "ClientStream":
        return [await channel.stream_unary(method)(iter([b"fine", what]))]
    return [m async for m in channel.stream_stream(method)(iter([b"fine", what]))]


SHAPES = ["Unary", "ServerStream", "ClientStream", "Bidi"]


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_answer_passes_untouched(probe: grpc.aio.Channel, shape: str) -> None:
    assert (await call(probe, shape, b"x"))[-1] == b"ok:x"


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_domain_error_leaves_with_its_code_message_and_retry_hint(
    probe: grpc.aio.Channel, shape: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(probe, shape, b"overloaded")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == "queue full"
    assert ("retry-after-ms", "75") in tuple(refused.value.trailing_metadata() or ())


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_unexpected_error_is_internal_with_the_logged_correlation_id(
    probe: grpc.aio.Channel, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="edge_contracts.status"),
        pytest.raises(grpc.aio.AioRpcError) as failed,
    ):
        await call(probe, shape, b"unexpected")
    assert failed.value.code() == grpc.StatusCode.INTERNAL  # never UNKNOWN
    details = failed.value.details() or ""
    assert "a private detail" not in details
    correlation = CORRELATION.search(details)
    assert correlation is not None
    logged = [r for r in caplog.records if correlation.group(1) in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "a private detail" in str(logged[0].exc_info[1])


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_abort_of_the_method_passes_through(probe: grpc.aio.Channel, shape: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as aborted:
        await call(probe, shape, b"abort")
    assert aborted.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert aborted.value.details() == "aborted by the method itself"


@pytest.mark.parametrize("rounds", range(5))
async def test_a_client_that_goes_away_mid_stream_is_no_error(
    writer: tuple[grpc.aio.Channel, Writer], caplog: pytest.LogCaptureFixture, rounds: int
) -> None:
    """A download cut by its client (FetchModel resumes from an offset by design) ends
    the method quietly: no INTERNAL abort, no traceback logged as an unexpected error."""
    channel, servicer = writer
    with caplog.at_level(logging.DEBUG):
        call = channel.unary_stream(f"/{SERVICE}/Endless")(b"")
        for _ in range(3):
            assert await call.read()
        call.cancel()
        await asyncio.wait_for(servicer.ended.wait(), 10)
        await asyncio.sleep(0.2)  # grpc's own handling of the ended method, logged or not
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_plain_function_is_refused() -> None:
    def not_async(self: object, request: bytes, context: object) -> bytes:
        return request

    with pytest.raises(TypeError, match="async def"):
        rpc_boundary(not_async)


@pytest.mark.parametrize(
    ("servicer", "base"),
    [
        (InferenceServicer, inference_pb2_grpc.InferenceServiceServicer),
        (ModelServicer, model_pb2_grpc.ModelServiceServicer),
        (V2Servicer, grpc_service_pb2_grpc.GRPCInferenceServiceServicer),
        (OrchestratorServicer, orchestrator_pb2_grpc.OrchestratorServiceServicer),
    ],
)
def test_every_servicer_method_has_the_boundary(servicer: type, base: type) -> None:
    rpcs = [name for name in vars(base) if name[0].isupper()]
    implemented = [name for name in rpcs if name in vars(servicer)]
    assert implemented  # the servicer does implement its service
    lacking = [name for name in implemented if not getattr(vars(servicer)[name], MARKER, False)]
    assert lacking == []


async def test_an_unexpected_fault_in_model_update_is_internal_not_unknown(
    model_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_harness(model_root, tmp_path / "work")
    try:
        # A disk fault no domain error describes: the upload folder's path is a file.
        incoming = model_root / ".incoming"
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.write_bytes(b"not a folder")
        with (
            caplog.at_level(logging.ERROR, logger="edge_contracts.status"),
            pytest.raises(grpc.aio.AioRpcError) as failed,
        ):
            await push(running.models, running.gray_bundle("3"))
        assert failed.value.code() == grpc.StatusCode.INTERNAL
        correlation = CORRELATION.search(failed.value.details() or "")
        assert correlation is not None
        (record,) = [r for r in caplog.records if correlation.group(1) in r.getMessage()]
        assert isinstance(record.exc_info[1], OSError)  # type: ignore[index]
    finally:
        await stop_harness(running)
