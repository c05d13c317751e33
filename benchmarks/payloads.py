"""Requests the benchmark sends: real images, the tensors made from them, gRPC frames.

- ``image``: encoded bytes in PredictRequest.image (a JPEG photo for MobileNetV2,
  a PNG digit for the digits models);
- ``tensor``: the model's own float32 input, preprocessed from the same image;
- ``v2``: the same tensor as a V2 ModelInferRequest (raw_input_contents);
- ``v2-shm``: the same tensor in a /dev/shm object registered with the gateway (V2 system
  shared memory), the request naming the region: what an app on the gateway's own board
  sends. Only for the MobileNetV2 models (a digit's 256 bytes gain nothing);
- ``pixels`` (not in the default set): the decoded, resized uint8 pixels [H, W, C] in
  PredictRequest.tensor, which the gateway normalizes by the manifest's recipe.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import models
from benchmarks.pipeline_limit import Recipe
from edge_contracts.proto.edge.v1 import inference_pb2, types_pb2
from edge_server.v2.shared_memory import SHM_DIR

PREDICT = "/edge.v1.InferenceService/Predict"
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
KINDS = ("image", "tensor", "v2", "v2-shm")
SHM_REGION = "bench-input"
SHM_PREFIX = "/edge-bench-"  # the v2-shm payloads' /dev/shm objects
# The app credential the bench gateway knows (--shared-memory-app-tokens, written by
# write_app_tokens): registering and using a region needs it (docs/kserve-v2.md).
BENCH_SHM_TOKEN = "edge-bench-shm-app-token-0123456789"
SHM_METADATA = (("authorization", f"Bearer {BENCH_SHM_TOKEN}"),)


def v2_available() -> bool:
    """The V2 (KServe / Open Inference Protocol) cell runs when its package imports."""
    try:
        import edge_contracts.proto.inference.grpc_service_pb2  # noqa: F401
    except ImportError:
        return False
    return True


def image_for(kind: str) -> bytes:
    if kind == "digits":
        return sorted((models.REPO / "examples" / "images").glob("digit_*.png"))[0].read_bytes()
    return models.jpeg_photo()


@dataclass(frozen=True)
class Payload:
    """One serialized request and how to check its answers."""

    model: str
    kind: str  # image, tensor or v2
    method: str  # gRPC path
    message: bytes  # serialized request
    shm_key: str = ""  # v2-shm: the /dev/shm object to register as SHM_REGION
    shm_size: int = 0
    headers: tuple[tuple[str, str], ...] = ()  # metadata every call of this payload sends

    @property
    def frame(self) -> bytes:
        """The gRPC length-prefixed message, as h2load posts it."""
        return b"\x00" + struct.pack(">I", len(self.message)) + self.message

    @property
    def rpc(self) -> str:
        return "ModelInfer" if self.kind.startswith("v2") else "Predict"


def tensor_row(model: models.BenchModel, root: Path) -> np.ndarray:
    """The model's input for the benchmark image, [1, ...] float32."""
    return Recipe.for_model(model.path(root).parent).preprocess(image_for(model.kind))


def payload(model: models.BenchModel, kind: str, root: Path) -> Payload:
    if kind == "image":
        request = inference_pb2.PredictRequest(model_name=model.name, image=image_for(model.kind))
        return Payload(model.name, kind, PREDICT, request.SerializeToString())
    row = tensor_row(model, root)
    if kind == "tensor":
        request = inference_pb2.PredictRequest(
            model_name=model.name,
            tensor=types_pb2.Tensor(
                dtype=types_pb2.DATA_TYPE_FLOAT32, shape=list(row.shape), data=row.tobytes()
            ),
        )
        return Payload(model.name, kind, PREDICT, request.SerializeToString())
    if kind == "pixels":
        pixels = Recipe.for_model(model.path(root).parent).decode(image_for(model.kind))
        request = inference_pb2.PredictRequest(
            model_name=model.name,
            tensor=types_pb2.Tensor(
                dtype=types_pb2.DATA_TYPE_UINT8, shape=list(pixels.shape), data=pixels.tobytes()
            ),
        )
        return Payload(model.name, kind, PREDICT, request.SerializeToString())
    if kind == "v2":
        infer = _v2_request(model, row, {})
        infer.raw_input_contents.append(row.tobytes())
        return Payload(model.name, kind, MODEL_INFER, infer.SerializeToString())
    if kind == "v2-shm":
        return _shared_memory_payload(model, row)
    raise ValueError(f"unknown payload kind {kind!r}")


def applies(kind: str, model: models.BenchModel) -> bool:
    """Whether a cell of this input kind is measured for the model."""
    return kind != "v2-shm" or model.kind != "digits"


def _v2_request(model: models.BenchModel, row: np.ndarray, parameters: dict[str, Any]) -> Any:
    """A ModelInferRequest for the model's FP32 input (no data yet)."""
    from edge_contracts.proto.inference import grpc_service_pb2 as pb

    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input", datatype="FP32", shape=list(row.shape), parameters=parameters
    )
    return pb.ModelInferRequest(model_name=model.name, inputs=[tensor])


def _shared_memory_payload(model: models.BenchModel, row: np.ndarray) -> Payload:
    """The tensor written once into /dev/shm/edge-bench-<model>; the request names it."""
    from edge_contracts.proto.inference import grpc_service_pb2 as pb

    key = f"{SHM_PREFIX}{model.name}"
    (SHM_DIR / key[1:]).write_bytes(row.tobytes())
    infer = _v2_request(
        model,
        row,
        {
            "shared_memory_region": pb.InferParameter(string_param=SHM_REGION),
            "shared_memory_byte_size": pb.InferParameter(int64_param=row.nbytes),
        },
    )
    return Payload(
        model.name,
        "v2-shm",
        MODEL_INFER,
        infer.SerializeToString(),
        key,
        row.nbytes,
        SHM_METADATA,
    )


def remove_shared_objects() -> None:
    """Delete the /dev/shm objects v2-shm payloads made (end of a run)."""
    for path in SHM_DIR.glob(SHM_PREFIX[1:] + "*"):
        path.unlink(missing_ok=True)


def prepare(target: str, payload: Payload) -> None:
    """Register a v2-shm payload's region with the gateway at ``target`` (again: a
    region of that name from an earlier model is replaced). Other kinds need nothing."""
    if not payload.shm_key:
        return
    import grpc

    from edge_contracts.proto.inference import grpc_service_pb2 as pb
    from edge_contracts.proto.inference import grpc_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.SystemSharedMemoryUnregister(
            pb.SystemSharedMemoryUnregisterRequest(name=SHM_REGION),
            timeout=10,
            metadata=payload.headers,
        )
        stub.SystemSharedMemoryRegister(
            pb.SystemSharedMemoryRegisterRequest(
                name=SHM_REGION, key=payload.shm_key, byte_size=payload.shm_size
            ),
            timeout=10,
            metadata=payload.headers,
        )


def response_bounds(payload: Payload, good_response: bytes) -> tuple[int, int]:
    """Smallest and largest gRPC frame (5-byte prefix + message) of a good answer.

    Predict answers carry stage timings whose varints vary in length; V2 answers
    have a fixed size. A failed call has no DATA frame at all.
    """
    response = (
        inference_pb2.PredictResponse.FromString(good_response)
        if payload.rpc == "Predict"
        else None
    )
    if response is None or not response.HasField("timings"):
        size = 5 + len(good_response)
        return size, size
    low, high = inference_pb2.PredictResponse(), inference_pb2.PredictResponse()
    low.CopyFrom(response)
    high.CopyFrom(response)
    low.timings.Clear()
    low.timings.SetInParent()
    for name in ("preprocess_us", "queue_us", "inference_us", "postprocess_us", "total_us"):
        setattr(high.timings, name, (1 << 28) - 1)  # 4-byte varints: up to 268 s
    return 5 + low.ByteSize(), 5 + high.ByteSize()


def write_app_tokens(folder: Path) -> Path:
    """The --shared-memory-app-tokens file of a bench gateway: this user may register
    the v2-shm payloads' regions with BENCH_SHM_TOKEN (mode 600, as the gateway demands)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "shm-app-tokens"
    path.write_text(f"bench {os.getuid()} {BENCH_SHM_TOKEN}\n", encoding="utf-8")
    path.chmod(0o600)
    return path
