"""Protobuf messages to result dataclasses, and numpy arrays to and from ``Tensor``.

``Tensor.data`` is always little-endian and row-major, whatever the host or the
array's own byte order and memory layout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf import timestamp_pb2

from edge_client.results import (
    ClassScore,
    FrameFailure,
    HealthReport,
    ModelHealth,
    ModelSummary,
    ModelVersion,
    Prediction,
    TensorSpec,
    Timings,
)
from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2, types_pb2

__all__ = [
    "dtype_name",
    "frame_result",
    "health_from_proto",
    "model_from_proto",
    "ndarray_to_tensor",
    "prediction_from_proto",
    "status_code",
    "tensor_to_ndarray",
]

# (numpy kind, item size) -> DataType; numpy dtypes of either byte order map here.
_DATA_TYPES: dict[tuple[str, int], int] = {
    ("f", 4): types_pb2.DATA_TYPE_FLOAT32,
    ("u", 1): types_pb2.DATA_TYPE_UINT8,
    ("i", 1): types_pb2.DATA_TYPE_INT8,
    ("i", 2): types_pb2.DATA_TYPE_INT16,
    ("i", 4): types_pb2.DATA_TYPE_INT32,
    ("i", 8): types_pb2.DATA_TYPE_INT64,
    ("f", 2): types_pb2.DATA_TYPE_FLOAT16,
    ("f", 8): types_pb2.DATA_TYPE_FLOAT64,
    ("b", 1): types_pb2.DATA_TYPE_BOOL,
    ("u", 2): types_pb2.DATA_TYPE_UINT16,
    ("u", 4): types_pb2.DATA_TYPE_UINT32,
    ("u", 8): types_pb2.DATA_TYPE_UINT64,
}
# DataType -> little-endian numpy dtype of the wire bytes.
_WIRE_DTYPES: dict[int, np.dtype[Any]] = {
    data_type: np.dtype(f"{kind}{size}").newbyteorder("<")
    for (kind, size), data_type in _DATA_TYPES.items()
}
_STATUS_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def ndarray_to_tensor(arr: npt.ArrayLike, name: str = "") -> types_pb2.Tensor:
    """Pack ``arr`` as a ``Tensor`` (little-endian, row-major).

    Raises TypeError for dtypes the contract has no DataType for.
    """
    array = np.asarray(arr)
    data_type = _DATA_TYPES.get((array.dtype.kind, array.dtype.itemsize))
    if data_type is None:
        supported = ", ".join(sorted(dtype_name(t) for t in _WIRE_DTYPES))
        raise TypeError(f"dtype {array.dtype} cannot be sent as a tensor; use one of {supported}")
    wire = np.ascontiguousarray(array, dtype=_WIRE_DTYPES[data_type])
    return types_pb2.Tensor(
        dtype=data_type,  # type: ignore[arg-type]
        shape=list(array.shape),
        data=wire.tobytes(order="C"),
        name=name,
    )


def tensor_to_ndarray(t: types_pb2.Tensor) -> npt.NDArray[Any]:
    """Unpack a ``Tensor`` into a writable array in native byte order; ValueError if malformed."""
    wire = _WIRE_DTYPES.get(int(t.dtype))
    if wire is None:
        raise ValueError(f"tensor {t.name!r} has unsupported dtype {int(t.dtype)}")
    shape = tuple(int(d) for d in t.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"tensor {t.name!r} has a negative dimension in {list(shape)}")
    expected = int(np.prod(shape, dtype=np.int64)) * wire.itemsize
    if len(t.data) != expected:
        raise ValueError(
            f"tensor {t.name!r} holds {len(t.data)} bytes; {dtype_name(int(t.dtype))}"
            f"{list(shape)} needs {expected}"
        )
    flat = np.frombuffer(t.data, dtype=wire)
    return flat.astype(wire.newbyteorder("="), copy=True).reshape(shape)


def dtype_name(data_type: int) -> str:
    """``DATA_TYPE_FLOAT32`` -> ``"float32"``; unknown numbers -> ``"unknown_<n>"``."""
    return _enum_name(types_pb2.DataType, data_type, "DATA_TYPE_").lower()


def status_code(number: int) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` for a numeric code (``UNKNOWN`` when out of range)."""
    return _STATUS_CODES.get(number, grpc.StatusCode.UNKNOWN)


def prediction_from_proto(response: inference_pb2.PredictResponse) -> Prediction:
    raw = tensor_to_ndarray(response.raw_output) if response.HasField("raw_output") else None
    t = response.timings
    return Prediction(
        model_name=response.model_name,
        model_version=response.model_version,
        class_id=int(response.class_id),
        label=response.label,
        confidence=float(response.confidence),
        top_k=tuple(
            ClassScore(class_id=int(s.class_id), label=s.label, score=float(s.score))
            for s in response.top_k
        ),
        timings=Timings(
            preprocess_us=int(t.preprocess_us),
            queue_us=int(t.queue_us),
            inference_us=int(t.inference_us),
            postprocess_us=int(t.postprocess_us),
            total_us=int(t.total_us),
        ),
        request_id=response.request_id,
        raw_output=raw,
    )


def frame_result(response: inference_pb2.PredictStreamResponse) -> Prediction | FrameFailure:
    """One PredictStream answer: the prediction, or why that frame failed."""
    if response.HasField("response"):
        return prediction_from_proto(response.response)
    if response.HasField("error"):
        error = response.error
        return FrameFailure(response.request_id, status_code(int(error.code)), error.message)
    return FrameFailure(
        response.request_id, grpc.StatusCode.UNKNOWN, "the gateway sent neither result nor error"
    )


def health_from_proto(response: inference_pb2.HealthResponse) -> HealthReport:
    return HealthReport(
        status=_enum_name(inference_pb2.ServingStatus, response.status, "SERVING_STATUS_"),
        gateway_id=response.gateway_id,
        software_version=response.software_version,
        uptime_seconds=float(response.uptime_seconds),
        default_model=response.default_model,
        models=tuple(
            ModelHealth(
                name=m.name,
                active_version=m.active_version,
                state=_state(m.state),
                versions_on_disk=tuple(m.versions_on_disk),
                loaded_at=_time(m.loaded_at) if m.HasField("loaded_at") else None,
                last_error=m.last_error,
                last_rollback=m.last_rollback,
            )
            for m in response.models
        ),
    )


def model_from_proto(info: model_pb2.ModelInfo) -> ModelSummary:
    return ModelSummary(
        name=info.name,
        active_version=info.active_version,
        state=_state(info.state),
        versions=tuple(
            ModelVersion(
                version=v.version,
                state=_state(v.state),
                sha256=v.sha256,
                size_bytes=int(v.size_bytes),
                source=v.source,
                received_at=_time(v.received_at) if v.HasField("received_at") else None,
                activated_at=_time(v.activated_at) if v.HasField("activated_at") else None,
                reason=v.reason,
                shadow_compared=int(v.shadow_compared),
                shadow_agreement=float(v.shadow_agreement),
            )
            for v in info.versions
        ),
        inputs=tuple(_spec(s) for s in info.inputs),
        outputs=tuple(_spec(s) for s in info.outputs),
        is_default=bool(info.is_default),
        label_count=int(info.label_count),
        rollback_target=info.rollback_target,
        shadow_version=info.shadow_version,
    )


def _spec(spec: model_pb2.TensorSpec) -> TensorSpec:
    return TensorSpec(spec.name, dtype_name(int(spec.dtype)), tuple(int(d) for d in spec.shape))


def _state(value: int) -> str:
    return _enum_name(types_pb2.ModelState, value, "MODEL_STATE_")


def _time(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    """Enum value name without its prefix; numbers a newer gateway may send stay readable."""
    try:
        name: str = enum.Name(int(value))
    except ValueError:
        return f"UNKNOWN_{int(value)}"
    return name.removeprefix(prefix)
