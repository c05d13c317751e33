"""Protobuf <-> domain conversions for edge.v1 messages.

Shared by both faces of the gateway: the gRPC servicers send these messages, and the
HTTP routes send the same messages as JSON (edge_server/http/). No grpc import here.
"""

from __future__ import annotations

import math
import time

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2, types_pb2
from edge_server.catalogue.serving import ModelSlot, ModelState, ServingCatalogue, ServingModel
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import InvalidInput
from edge_server.gateway_info import GatewayInfo
from edge_server.inference.predictor import PredictInput, PredictOutput

MAX_TOP_K = 1000

_DTYPES: dict[types_pb2.DataType.ValueType, str] = {
    types_pb2.DATA_TYPE_FLOAT32: "float32",
    types_pb2.DATA_TYPE_UINT8: "uint8",
    types_pb2.DATA_TYPE_INT8: "int8",
    types_pb2.DATA_TYPE_INT16: "int16",
    types_pb2.DATA_TYPE_INT32: "int32",
    types_pb2.DATA_TYPE_INT64: "int64",
    types_pb2.DATA_TYPE_FLOAT16: "float16",
    types_pb2.DATA_TYPE_FLOAT64: "float64",
    types_pb2.DATA_TYPE_BOOL: "bool",
    types_pb2.DATA_TYPE_UINT16: "uint16",
    types_pb2.DATA_TYPE_UINT32: "uint32",
    types_pb2.DATA_TYPE_UINT64: "uint64",
}
_DTYPE_ENUMS = {name: code for code, name in _DTYPES.items()}

_STATES = {
    ModelState.LOADING: types_pb2.MODEL_STATE_LOADING,
    ModelState.READY: types_pb2.MODEL_STATE_READY,
    ModelState.FAILED: types_pb2.MODEL_STATE_FAILED,
    ModelState.UNLOADED: types_pb2.MODEL_STATE_UNLOADED,
}


# Wire tensors are little-endian: the dtype to read them with and the native one.
_WIRE_DTYPES = {
    code: (np.dtype(name).newbyteorder("<"), np.dtype(name)) for code, name in _DTYPES.items()
}


def tensor_to_array(tensor: types_pb2.Tensor) -> np.ndarray:
    """Decode a wire tensor; InvalidInput when dtype, shape and byte count disagree."""
    dtypes = _WIRE_DTYPES.get(tensor.dtype)
    if dtypes is None:  # proto3 enums are open: any int can arrive
        raise InvalidInput(
            f"tensor dtype {tensor.dtype} is not supported; set one of "
            + ", ".join(types_pb2.DataType.Name(c) for c in _DTYPES),
            field="tensor.dtype",
        )
    wire, native = dtypes
    shape = tensor.shape[:]  # a list: quicker out of upb than tuple()
    if shape and min(shape) < 0:
        raise InvalidInput(f"tensor shape {list(shape)} has a negative dimension", "tensor.shape")
    data = tensor.data
    expected = math.prod(shape) * wire.itemsize
    if expected != len(data):
        raise InvalidInput(
            f"tensor data is {len(data)} bytes but shape {list(shape)} of {_DTYPES[tensor.dtype]} "
            f"needs {expected}",
            field="tensor.data",
        )
    array = np.frombuffer(data, dtype=wire).reshape(shape)
    return array if wire == native else array.astype(native)


def array_to_tensor(array: np.ndarray, name: str = "") -> types_pb2.Tensor:
    dtype_name = array.dtype.name
    code = _DTYPE_ENUMS.get(dtype_name, types_pb2.DATA_TYPE_UNSPECIFIED)
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return types_pb2.Tensor(dtype=code, shape=list(array.shape), data=little.tobytes(), name=name)


def to_predict_input(
    request: inference_pb2.PredictRequest, time_remaining: float | None
) -> PredictInput:
    if request.top_k > MAX_TOP_K:
        raise InvalidInput(f"top_k {request.top_k} is over the limit of {MAX_TOP_K}", "top_k")
    kind = request.WhichOneof("input")
    deadline = time.monotonic() + time_remaining if time_remaining is not None else None
    if kind == "tensor":
        tensor = request.tensor
        return PredictInput(
            model_name=request.model_name,
            model_version=request.model_version,
            tensor=tensor_to_array(tensor),
            tensor_name=tensor.name,
            top_k=request.top_k,
            return_raw_output=request.return_raw_output,
            deadline=deadline,
        )
    if kind == "image":
        return PredictInput(
            model_name=request.model_name,
            model_version=request.model_version,
            image=request.image,
            top_k=request.top_k,
            return_raw_output=request.return_raw_output,
            deadline=deadline,
        )
    raise InvalidInput("the request has no input: set `image` or `tensor`", field="input")


def to_predict_response(output: PredictOutput, request_id: str) -> inference_pb2.PredictResponse:
    c = output.classification
    t = output.timings
    response = inference_pb2.PredictResponse(
        model_name=output.model_name,
        model_version=output.model_version,
        class_id=c.class_id,
        label=c.label,
        confidence=c.confidence,
        request_id=request_id,
    )
    # Filled in place: upb builds this faster than from separate message objects.
    timings = response.timings
    timings.preprocess_us = t.preprocess_us
    timings.queue_us = t.queue_us
    timings.inference_us = t.inference_us
    timings.postprocess_us = t.postprocess_us
    timings.total_us = t.total_us
    add_score = response.top_k.add
    for e in c.top_k:
        add_score(class_id=e.class_id, label=e.label, score=e.score)
    if output.raw_output is not None:
        response.raw_output.CopyFrom(array_to_tensor(output.raw_output))
    return response


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def model_state(slot: ModelSlot) -> types_pb2.ModelState.ValueType:
    return _STATES[slot.state]


def to_model_health(slot: ModelSlot) -> inference_pb2.ModelHealth:
    active = slot.active
    health = inference_pb2.ModelHealth(
        name=slot.name,
        active_version=active.version if active else "",
        state=model_state(slot),
        versions_on_disk=list(slot.versions_on_disk),
        last_error=slot.last_error,
        last_rollback=slot.last_rollback,
    )
    if active is not None:
        health.loaded_at.CopyFrom(timestamp(active.loaded_at))
    return health


def to_tensor_spec(spec: TensorSpec) -> model_pb2.TensorSpec:
    return model_pb2.TensorSpec(
        name=spec.name,
        dtype=_DTYPE_ENUMS.get(spec.dtype, types_pb2.DATA_TYPE_UNSPECIFIED),
        shape=list(spec.shape),
    )


def to_model_info(
    slot: ModelSlot, versions: list[model_pb2.ModelVersionInfo], is_default: bool
) -> model_pb2.ModelInfo:
    active: ServingModel | None = slot.active
    return model_pb2.ModelInfo(
        name=slot.name,
        active_version=active.version if active else "",
        state=model_state(slot),
        versions=versions,
        inputs=[to_tensor_spec(s) for s in active.inputs] if active else [],
        outputs=[to_tensor_spec(s) for s in active.outputs] if active else [],
        is_default=is_default,
        label_count=len(active.manifest.labels) if active else 0,
    )


def to_health_response(models: ServingCatalogue, info: GatewayInfo) -> inference_pb2.HealthResponse:
    """edge.v1 Health: SERVING while a model is ready and the gateway is not draining."""
    serving = models.any_ready() and not info.shutting_down
    return inference_pb2.HealthResponse(
        status=inference_pb2.SERVING_STATUS_SERVING
        if serving
        else inference_pb2.SERVING_STATUS_NOT_SERVING,
        gateway_id=info.gateway_id,
        software_version=info.software_version,
        uptime_seconds=time.monotonic() - info.started,
        models=[to_model_health(slot) for slot in models.slots()],
        default_model=models.default_model,
    )
