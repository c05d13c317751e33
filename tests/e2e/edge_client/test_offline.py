"""edge_client without a gateway: tensors, image arguments, conversions, errors, retries, CLI.

Errors are real: a closed loopback port, and a plain ``grpc.server`` on port 0 whose
only behaviour is to end every call with a chosen status (it knows nothing of the
gateway's logic and never answers a request successfully).
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from edge_client import (
    AsyncEdgeClient,
    EdgeClient,
    EdgeClientError,
    Frame,
    FrameFailure,
    ResourceExhausted,
    Unavailable,
    Unknown,
    channel_credentials,
    errors,
    from_rpc_error,
)
from edge_client.channel_config import SERVICE_CONFIG, channel_options
from edge_client.cli import main
from edge_client.convert import (
    frame_result,
    health_from_proto,
    model_from_proto,
    ndarray_to_tensor,
    prediction_from_proto,
    tensor_to_ndarray,
)
from edge_client.inputs import encode_image
from edge_client.requests import auth_metadata, predict_request, stream_request
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, model_pb2, types_pb2
from tests.support.certs import Pki, make_pki
from tests.support.paths import REPO

Code = grpc.StatusCode
STREAMING = {"/edge.v1.InferenceService/PredictStream", "/edge.v1.ModelService/ModelUpdate"}


# --- a real gRPC server that only ever aborts ----------------------------------------


@dataclass
class Call:
    method: str
    metadata: dict[str, str]
    requests: list[bytes]


@dataclass
class AbortingServer:
    """Ends every call with ``code``/``details`` (+ trailing metadata) and records it."""

    target: str = ""
    code: grpc.StatusCode = Code.UNKNOWN
    details: str = "unset"
    trailing: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    calls: list[Call] = field(default_factory=list)

    def count(self, method: str) -> int:
        return sum(1 for call in self.calls if call.method.endswith("/" + method))

    def handle(self, method: str, requests: Iterator[bytes], context: grpc.ServicerContext) -> None:
        call = Call(method, {k: str(v) for k, v in context.invocation_metadata()}, [])
        self.calls.append(call)
        for request in requests:
            call.requests.append(request)
        if self.delay:
            time.sleep(self.delay)
        if self.trailing:
            context.set_trailing_metadata(self.trailing)
        context.abort(self.code, self.details)


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, owner: AbortingServer) -> None:
        self.owner = owner

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method
        if method in STREAMING:
            return grpc.stream_stream_rpc_method_handler(
                lambda requests, ctx: self.owner.handle(method, requests, ctx)
            )
        return grpc.unary_unary_rpc_method_handler(
            lambda request, ctx: self.owner.handle(method, iter([request]), ctx)
        )


def _serve(credentials: grpc.ServerCredentials | None = None) -> Iterator[AbortingServer]:
    owner = AbortingServer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[_Handler(owner)])
    port = (
        server.add_secure_port("127.0.0.1:0", credentials)
        if credentials
        else server.add_insecure_port("127.0.0.1:0")
    )
    server.start()
    owner.target = f"127.0.0.1:{port}"
    try:
        yield owner
    finally:
        server.stop(grace=None).wait(5)


@pytest.fixture
def aborting() -> Iterator[AbortingServer]:
    yield from _serve()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_aborting(pki: Pki) -> Iterator[AbortingServer]:
    server_credentials = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())]
    )
    yield from _serve(server_credentials)


@pytest.fixture
def closed_target() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"  # nothing listens here any more


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "digit_3_0.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    return path


# --- tensors ----------------------------------------------------------------------------

DTYPES = [
    ("float32", types_pb2.DATA_TYPE_FLOAT32),
    ("uint8", types_pb2.DATA_TYPE_UINT8),
    ("int8", types_pb2.DATA_TYPE_INT8),
    ("int16", types_pb2.DATA_TYPE_INT16),
    ("int32", types_pb2.DATA_TYPE_INT32),
    ("int64", types_pb2.DATA_TYPE_INT64),
    ("float16", types_pb2.DATA_TYPE_FLOAT16),
    ("float64", types_pb2.DATA_TYPE_FLOAT64),
    ("bool", types_pb2.DATA_TYPE_BOOL),
    ("uint16", types_pb2.DATA_TYPE_UINT16),
    ("uint32", types_pb2.DATA_TYPE_UINT32),
    ("uint64", types_pb2.DATA_TYPE_UINT64),
]


def _sample(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(7)
    kind = np.dtype(dtype)
    if kind == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if kind.kind == "f":
        return rng.normal(0, 1000, shape).astype(kind)
    info = np.iinfo(kind)
    return rng.integers(info.min, info.max, shape, dtype=kind, endpoint=True)


@pytest.mark.parametrize(("dtype", "data_type"), DTYPES, ids=[d for d, _ in DTYPES])
@pytest.mark.parametrize(
    "shape", [(2, 3, 4), (5,), (), (0, 3)], ids=["3d", "1d", "scalar", "empty"]
)
def test_tensor_round_trip_every_dtype(dtype: str, data_type: int, shape: tuple[int, ...]) -> None:
    array = _sample(dtype, shape)
    tensor = ndarray_to_tensor(array, name="input")
    assert tensor.dtype == data_type and list(tensor.shape) == list(shape)
    assert tensor.name == "input"
    assert tensor.data == array.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    wire = types_pb2.Tensor.FromString(tensor.SerializeToString())  # through the wire format
    back = tensor_to_ndarray(wire)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert back.flags.writeable


@pytest.mark.parametrize("dtype", ["float32", "int16", "int64", "float16", "uint32", "float64"])
def test_tensor_bytes_are_little_endian_whatever_the_array_order(dtype: str) -> None:
    native = _sample(dtype, (3, 2))
    big = native.astype(np.dtype(dtype).newbyteorder(">"))
    little_bytes = native.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
    assert ndarray_to_tensor(big).data == little_bytes
    assert ndarray_to_tensor(native).data == little_bytes
    np.testing.assert_array_equal(tensor_to_ndarray(ndarray_to_tensor(big)), native)


def test_tensor_known_bytes_and_row_major_layout() -> None:
    tensor = ndarray_to_tensor(np.array([[1, 2], [3, 4]], dtype=np.int32).T)  # Fortran view
    assert list(tensor.shape) == [2, 2]
    assert tensor.data == b"".join(v.to_bytes(4, "little") for v in (1, 3, 2, 4))
    half = ndarray_to_tensor(np.array([1.0], dtype=">f4"))
    assert half.data == b"\x00\x00\x80\x3f"
    strided = np.arange(20, dtype=np.uint16).reshape(4, 5)[::2, 1::2]
    np.testing.assert_array_equal(tensor_to_ndarray(ndarray_to_tensor(strided)), strided)


@pytest.mark.parametrize("bad", [np.zeros(2, np.complex64), np.array(["a"]), np.array([None])])
def test_unsupported_dtypes_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(TypeError, match="cannot be sent as a tensor"):
        ndarray_to_tensor(bad)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_FLOAT32, shape=[2], data=b"\0" * 7), "needs 8"),
        (types_pb2.Tensor(shape=[1], data=b"\0"), "unsupported dtype 0"),
        (types_pb2.Tensor(dtype=types_pb2.DATA_TYPE_UINT8, shape=[-1], data=b""), "negative"),
    ],
)
def test_malformed_tensors_are_refused(tensor: types_pb2.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tensor_to_ndarray(tensor)


# --- image arguments ------------------------------------------------------------------


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def test_paths_and_bytes_are_sent_as_they_are(png_file: Path) -> None:
    raw = png_file.read_bytes()
    assert encode_image(str(png_file)) == raw
    assert encode_image(png_file) == raw
    assert encode_image(raw) == raw
    assert encode_image(bytearray(b"jpeg?")) == b"jpeg?"
    with pytest.raises(FileNotFoundError):
        encode_image(png_file.with_name("missing.png"))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "P"])
def test_pil_images_are_encoded_losslessly(mode: str) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (6, 5, 3), np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    decoded = _decode(encode_image(image))
    assert decoded.mode == image.mode and decoded.size == (5, 6)
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(image))


def test_pil_modes_png_cannot_hold() -> None:
    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))
    assert _decode(encode_image(cmyk)).mode == "RGB"
    with pytest.raises(ValueError, match="cannot be stored as PNG"):
        encode_image(Image.new("F", (2, 2)))


@pytest.mark.parametrize(
    ("shape", "mode"), [((6, 5), "L"), ((6, 5, 1), "L"), ((6, 5, 3), "RGB"), ((6, 5, 4), "RGBA")]
)
def test_uint8_arrays_are_encoded_as_png(shape: tuple[int, ...], mode: str) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, shape, np.uint8)
    decoded = _decode(encode_image(pixels))
    assert decoded.mode == mode
    np.testing.assert_array_equal(np.asarray(decoded), pixels.reshape(np.asarray(decoded).shape))
    flipped = pixels[::-1]  # negative strides are fine too
    np.testing.assert_array_equal(
        np.asarray(_decode(encode_image(flipped))), flipped.reshape(np.asarray(decoded).shape)
    )


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (np.zeros((4, 4), np.float32), ValueError),
        (np.zeros((4, 4, 2), np.uint8), ValueError),
        (np.zeros((2, 4, 4, 3), np.uint8), ValueError),
        (42, TypeError),
    ],
)
def test_bad_image_arguments(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_image(value)


def test_pillow_is_imported_only_when_needed() -> None:
    code = (
        "import sys; from edge_client.inputs import encode_image; import edge_client; "
        "encode_image(b'x'); assert 'PIL' not in sys.modules, 'early'; "
        "import numpy as np; encode_image(np.zeros((2, 2), np.uint8)); "
        "assert 'PIL.Image' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


# --- requests and conversions ------------------------------------------------------------


def test_predict_requests() -> None:
    request = predict_request(image=b"png", model="digits", version="2", top_k=3, request_id="r")
    assert request.WhichOneof("input") == "image" and request.image == b"png"
    assert (request.model_name, request.model_version, request.top_k) == ("digits", "2", 3)
    tensor = predict_request(tensor=np.zeros((1, 2), np.float32), tensor_name="x")
    assert tensor.WhichOneof("input") == "tensor" and tensor.tensor.name == "x"
    for bad in ({}, {"image": b"a", "tensor": np.zeros(1)}, {"image": b"a", "top_k": -1}):
        with pytest.raises(ValueError):
            predict_request(**bad)
    frames = [stream_request(i, f) for i, f in enumerate([b"a", Frame(image=b"b", request_id="x")])]
    assert [f.request.request_id for f in frames] == ["0", "x"]
    assert auth_metadata("t") == (("authorization", "Bearer t"),) and auth_metadata(None) == ()


def test_retry_policy_covers_only_idempotent_calls() -> None:
    (config,) = SERVICE_CONFIG["methodConfig"]
    assert {n["method"] for n in config["name"]} == {"Predict", "Health", "ListModels"}
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert config["retryPolicy"]["maxAttempts"] == 4
    options = dict(channel_options(1024, [("grpc.enable_retries", 0)]))
    assert options["grpc.enable_retries"] == 0 and options["grpc.max_send_message_length"] == 1024
    assert json.loads(options["grpc.service_config"]) == SERVICE_CONFIG


def _prediction_proto() -> inference_pb2.PredictResponse:
    return inference_pb2.PredictResponse(
        model_name="digits",
        model_version="1",
        class_id=3,
        label="3",
        confidence=0.875,
        top_k=[inference_pb2.ClassScore(class_id=3, label="3", score=0.875)],
        raw_output=ndarray_to_tensor(np.array([[0.5, 0.25]], np.float32)),
        timings=inference_pb2.StageTimings(total_us=1230, inference_us=800),
        request_id="r1",
    )


def test_prediction_conversion_and_json() -> None:
    prediction = prediction_from_proto(_prediction_proto())
    assert (prediction.class_id, prediction.label, prediction.confidence) == (3, "3", 0.875)
    assert prediction.timings.total_ms == pytest.approx(1.23)
    assert prediction.raw_output is not None and prediction.raw_output.shape == (1, 2)
    document = json.loads(json.dumps(prediction.to_dict()))
    assert document["top_k"] == [{"class_id": 3, "label": "3", "score": 0.875}]
    assert document["raw_output"] == {"dtype": "float32", "shape": [1, 2], "values": [[0.5, 0.25]]}
    bare = prediction_from_proto(inference_pb2.PredictResponse(model_name="m"))
    assert bare.raw_output is None and bare.top_k == ()


def test_stream_answers_become_predictions_or_frame_failures() -> None:
    ok = frame_result(
        inference_pb2.PredictStreamResponse(request_id="a", response=_prediction_proto())
    )
    assert ok.request_id == "r1" and not isinstance(ok, FrameFailure)
    failed = frame_result(
        inference_pb2.PredictStreamResponse(
            request_id="b", error=inference_pb2.FrameError(code=3, message="not an image")
        )
    )
    assert failed == FrameFailure("b", Code.INVALID_ARGUMENT, "not an image")
    assert frame_result(inference_pb2.PredictStreamResponse(request_id="c")).code == Code.UNKNOWN


def test_health_and_model_conversions() -> None:
    health = inference_pb2.HealthResponse(
        status=inference_pb2.SERVING_STATUS_NOT_SERVING,
        gateway_id="gw",
        uptime_seconds=12.5,
        models=[inference_pb2.ModelHealth(name="digits", state=types_pb2.MODEL_STATE_LOADING)],
    )
    health.models[0].loaded_at.FromSeconds(1_700_000_000)
    report = health_from_proto(health)
    assert report.status == "NOT_SERVING" and not report.serving
    assert report.models[0].state == "LOADING" and report.models[0].loaded_at is not None
    assert report.models[0].loaded_at.year == 2023
    json.dumps(report.to_dict())
    info = model_pb2.ModelInfo(
        name="digits",
        active_version="2",
        state=types_pb2.MODEL_STATE_READY,
        versions=[
            model_pb2.ModelVersionInfo(version="1", state=types_pb2.MODEL_STATE_ROLLED_BACK),
            model_pb2.ModelVersionInfo(version="2", state=99),  # from a newer gateway
        ],
        inputs=[model_pb2.TensorSpec(name="input", dtype=types_pb2.DATA_TYPE_UINT8, shape=[-1, 8])],
        is_default=True,
    )
    summary = model_from_proto(info)
    assert [v.state for v in summary.versions] == ["ROLLED_BACK", "UNKNOWN_99"]
    assert summary.versions[0].received_at is None
    assert summary.inputs[0].dtype == "uint8" and summary.inputs[0].shape == (-1, 8)
    assert json.loads(json.dumps(summary.to_dict()))["is_default"] is True


# --- errors over real sockets ---------------------------------------------------------------

ALL_CODES = [
    (Code.INVALID_ARGUMENT, errors.InvalidArgument),
    (Code.NOT_FOUND, errors.NotFound),
    (Code.UNAVAILABLE, errors.Unavailable),
    (Code.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
    (Code.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
    (Code.FAILED_PRECONDITION, errors.FailedPrecondition),
    (Code.UNAUTHENTICATED, errors.Unauthenticated),
    (Code.PERMISSION_DENIED, errors.PermissionDenied),
    (Code.ABORTED, errors.Aborted),
    (Code.INTERNAL, errors.Internal),
    (Code.UNKNOWN, errors.Unknown),
    (Code.UNIMPLEMENTED, errors.Unknown),
]


@pytest.mark.parametrize(("code", "kind"), ALL_CODES, ids=[c.name for c, _ in ALL_CODES])
def test_every_status_code_maps_to_its_exception(
    aborting: AbortingServer, code: grpc.StatusCode, kind: type[EdgeClientError]
) -> None:
    aborting.code, aborting.details = code, f"because {code.name}"
    with EdgeClient(aborting.target, timeout=5) as client, pytest.raises(kind) as caught:
        client.predict(b"png")
    assert type(caught.value) is kind and isinstance(caught.value, EdgeClientError)
    assert caught.value.code == code and caught.value.details == f"because {code.name}"
    assert str(caught.value) == f"{code.name}: because {code.name}"
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_resource_exhausted_carries_retry_after(aborting: AbortingServer) -> None:
    aborting.code, aborting.details = Code.RESOURCE_EXHAUSTED, "queue full"
    aborting.trailing = (("retry-after-ms", "250"),)
    with EdgeClient(aborting.target) as client:
        with pytest.raises(ResourceExhausted) as caught:
            client.predict(b"png")
        assert caught.value.retry_after_ms == 250
        assert ("retry-after-ms", "250") in caught.value.trailing_metadata
        aborting.trailing = (("retry-after-ms", "soon"),)
        with pytest.raises(ResourceExhausted) as garbled:
            client.health()
        assert garbled.value.retry_after_ms is None
    assert aborting.count("Predict") == 1  # RESOURCE_EXHAUSTED is not retried


def test_closed_port_is_unavailable(closed_target: str) -> None:
    with grpc.insecure_channel(closed_target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raw:
            stub.Health(inference_pb2.HealthRequest(), timeout=2)
    mapped = from_rpc_error(raw.value)
    assert isinstance(mapped, Unavailable) and mapped.code == Code.UNAVAILABLE and mapped.details
    with EdgeClient(closed_target, timeout=2) as client, pytest.raises(Unavailable):
        client.predict(np.zeros((4, 4), np.uint8))
    bare = from_rpc_error(grpc.RpcError("no status"))
    assert isinstance(bare, Unknown) and bare.code == Code.UNKNOWN


def test_default_deadline_applies(aborting: AbortingServer) -> None:
    aborting.code, aborting.delay = Code.INTERNAL, 1.0
    with EdgeClient(aborting.target, timeout=0.1) as client, pytest.raises(errors.DeadlineExceeded):
        client.health()
    with EdgeClient(aborting.target, timeout=30) as client, pytest.raises(errors.DeadlineExceeded):
        client.list_models(timeout=0.1)


@pytest.mark.parametrize(
    ("call", "method", "attempts"),
    [
        (lambda c: c.predict(b"png"), "Predict", 4),
        (lambda c: c.predict_tensor(np.zeros(3, np.float32)), "Predict", 4),
        (lambda c: c.health(), "Health", 4),
        (lambda c: c.list_models(), "ListModels", 4),
        (lambda c: c.activate("m", "2"), "ActivateModel", 1),
        (lambda c: c.rollback("m", "bad"), "RollbackModel", 1),
        (lambda c: list(c.predict_stream([b"png"])), "PredictStream", 1),
    ],
    ids=["predict", "predict_tensor", "health", "list_models", "activate", "rollback", "stream"],
)
def test_only_idempotent_calls_retry_unavailable(
    aborting: AbortingServer, call: Callable[[EdgeClient], object], method: str, attempts: int
) -> None:
    aborting.code, aborting.details = Code.UNAVAILABLE, "model loading"
    with EdgeClient(aborting.target) as client, pytest.raises(Unavailable, match="model loading"):
        call(client)
    assert aborting.count(method) == attempts


def test_token_goes_only_to_model_service(aborting: AbortingServer) -> None:
    aborting.code = Code.NOT_FOUND
    with EdgeClient(aborting.target, token="s3cret") as client:
        for call in (client.list_models, client.health, lambda: client.predict(b"x")):
            with pytest.raises(errors.NotFound):
                call()
    sent = {
        call.method.rsplit("/", 1)[1]: call.metadata.get("authorization") for call in aborting.calls
    }
    assert sent == {"ListModels": "Bearer s3cret", "Health": None, "Predict": None}
    request = model_pb2.ListModelsRequest.FromString(aborting.calls[0].requests[0])
    assert request.model_name == ""


def test_stream_sends_every_frame_and_raises_the_stream_error(
    aborting: AbortingServer, png_file: Path
) -> None:
    aborting.code, aborting.details = Code.INVALID_ARGUMENT, "no"
    frames = [png_file, Frame(tensor=np.ones((1, 2), np.float32), request_id="t")]
    with EdgeClient(aborting.target) as client, pytest.raises(errors.InvalidArgument):
        list(client.predict_stream(frames, model="digits", top_k=2))
    (call,) = aborting.calls
    sent = [inference_pb2.PredictStreamRequest.FromString(r).request for r in call.requests]
    assert [r.request_id for r in sent] == ["0", "t"]
    assert sent[0].image == png_file.read_bytes() and sent[1].tensor.shape == [1, 2]
    assert {(r.model_name, r.top_k) for r in sent} == {("digits", 2)}


def test_stream_reports_a_broken_frame_source_not_a_bare_cancel(
    aborting: AbortingServer, png_file: Path
) -> None:
    with EdgeClient(aborting.target) as client, pytest.raises(FileNotFoundError):
        list(client.predict_stream([png_file, png_file.with_name("gone.png")]))


def test_tls_and_server_name_override(tls_aborting: AbortingServer, pki: Pki) -> None:
    tls_aborting.code = Code.NOT_FOUND  # any answer at all proves the handshake worked
    port = tls_aborting.target.rsplit(":", 1)[1]
    credentials = channel_credentials(pki.ca_cert)
    by_name = EdgeClient(f"localhost:{port}", credentials=credentials)
    with by_name, pytest.raises(errors.NotFound):
        by_name.health()
    renamed = [("grpc.ssl_target_name_override", "not-the-server.example")]
    mismatched = EdgeClient(tls_aborting.target, credentials=credentials, options=renamed)
    with mismatched, pytest.raises(Unavailable):
        mismatched.health()
    with pytest.raises(ValueError, match="both"):
        channel_credentials(pki.ca_cert, client_cert=pki.client_cert)


# --- asyncio client -------------------------------------------------------------------------


async def test_async_client_maps_errors_and_metadata(
    aborting: AbortingServer, closed_target: str
) -> None:
    aborting.code, aborting.details = Code.RESOURCE_EXHAUSTED, "busy"
    aborting.trailing = (("retry-after-ms", "40"),)
    async with AsyncEdgeClient(aborting.target, token="tok") as client:
        with pytest.raises(ResourceExhausted) as caught:
            await client.predict(b"png")
        assert caught.value.retry_after_ms == 40 and caught.value.details == "busy"
        aborting.code = Code.PERMISSION_DENIED
        with pytest.raises(errors.PermissionDenied):
            await client.rollback("digits", "drift")
        with pytest.raises(errors.PermissionDenied):
            async for _ in client.predict_stream([b"a", b"b"]):
                pass
    assert aborting.calls[1].metadata["authorization"] == "Bearer tok"
    assert len(aborting.calls[2].requests) == 2
    async with AsyncEdgeClient(closed_target, timeout=2) as client:
        with pytest.raises(Unavailable):
            await client.health()


async def test_async_stream_reports_a_broken_frame_source(
    aborting: AbortingServer, png_file: Path
) -> None:
    async def frames() -> Any:
        yield png_file
        raise OSError("camera unplugged")

    async with AsyncEdgeClient(aborting.target) as client:
        with pytest.raises(OSError, match="camera unplugged"):
            async for _ in client.predict_stream(frames()):
                pass


# --- CLI --------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_client", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_cli_help_as_a_module() -> None:
    done = _cli("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: edge-client") and not done.stderr
    for command in ("predict", "health", "models", "activate", "rollback"):
        assert f"    {command} " in done.stdout


@pytest.mark.parametrize("command", ["predict", "health", "models", "activate", "rollback"])
def test_cli_help_of_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: edge-client {command}")


def test_cli_against_a_closed_port(closed_target: str, png_file: Path) -> None:
    done = _cli("--target", closed_target, "predict", str(png_file))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("edge-client: error: UNAVAILABLE: ")
    assert closed_target in done.stderr
    via_env = _cli("health", "--timeout", "2", env={"EDGE_TARGET": closed_target})
    assert via_env.returncode == 1 and closed_target in via_env.stderr


def test_cli_missing_image_file(closed_target: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"
    done = _cli("--target", closed_target, "predict", str(missing))
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == f"edge-client: error: cannot read {missing}: No such file or directory"
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["predict"],
        ["predict", "x.png", "--top-k", "-1"],
        ["health", "--timeout", "0"],
        ["push"],
        ["activate", "digits"],
        ["--client-cert", "c.pem", "--client-key", "k.pem", "health"],
        ["--ca-cert", "ca.pem", "--client-cert", "c.pem", "health"],
    ],
)
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    [line] = capsys.readouterr().err.splitlines()  # one line, no usage block
    assert line.startswith("edge-client") and ": error: " in line and "--help" in line


def test_cli_sends_what_it_is_told(
    aborting: AbortingServer, png_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    aborting.code, aborting.details = Code.INVALID_ARGUMENT, "bad pixels"
    argv = [
        "predict",
        str(png_file),
        "--model",
        "digits",
        "--version",
        "3",
        "--top-k",
        "2",
        "--json",
    ]
    assert main(["--target", aborting.target, *argv]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "edge-client: error: INVALID_ARGUMENT: bad pixels\n"
    request = inference_pb2.PredictRequest.FromString(aborting.calls[0].requests[0])
    assert (request.model_name, request.model_version, request.top_k) == ("digits", "3", 2)
    assert request.image == png_file.read_bytes()
    aborting.code = Code.UNAUTHENTICATED
    assert main(["models", "--target", aborting.target, "--token", "tok"]) == 1
    assert aborting.calls[-1].metadata["authorization"] == "Bearer tok"
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_cli_tls_flags(tls_aborting: AbortingServer, pki: Pki) -> None:
    tls_aborting.code, tls_aborting.details = Code.NOT_FOUND, "no such model"
    tls = ["--target", tls_aborting.target, "--ca-cert", str(pki.ca_cert)]
    good = _cli(*tls, "--server-name", "localhost", "health")
    assert good.returncode == 1 and "NOT_FOUND: no such model" in good.stderr
    wrong = _cli(*tls, "--server-name", "elsewhere.example", "health")
    assert wrong.returncode == 1 and "UNAVAILABLE" in wrong.stderr


def test_concurrent_calls_share_one_client(aborting: AbortingServer) -> None:
    aborting.code = Code.NOT_FOUND
    failures: list[BaseException] = []

    def worker(client: EdgeClient) -> None:
        try:
            client.predict(b"x")
        except errors.NotFound as err:
            failures.append(err)

    with EdgeClient(aborting.target) as client:
        threads = [threading.Thread(target=worker, args=(client,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len(failures) == 8 and aborting.count("Predict") == 8
