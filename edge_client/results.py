"""What the client returns: frozen dataclasses, independent of protobuf.

States and dtypes are short strings (``"READY"``, ``"float32"``); timestamps are
timezone-aware ``datetime`` objects or ``None`` when the gateway did not set them.
Every top-level result has ``to_dict()`` returning JSON-ready data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

__all__ = [
    "ClassScore",
    "FrameFailure",
    "HealthReport",
    "ModelHealth",
    "ModelSummary",
    "ModelVersion",
    "Prediction",
    "TensorSpec",
    "Timings",
]


@dataclass(frozen=True)
class ClassScore:
    """One entry of a top-k list."""

    class_id: int
    label: str
    score: float


@dataclass(frozen=True)
class Timings:
    """Where the time went inside the gateway, in microseconds."""

    preprocess_us: int
    queue_us: int
    inference_us: int
    postprocess_us: int
    total_us: int

    @property
    def total_ms(self) -> float:
        return self.total_us / 1000.0


@dataclass(frozen=True)
class Prediction:
    """The classification of one input."""

    model_name: str
    model_version: str
    class_id: int
    label: str
    confidence: float
    top_k: tuple[ClassScore, ...]
    timings: Timings
    request_id: str = ""
    raw_output: npt.NDArray[Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = _jsonable(self)
        assert isinstance(data, dict)
        return data


@dataclass(frozen=True)
class FrameFailure:
    """A PredictStream frame the gateway could not answer; the stream goes on."""

    request_id: str
    code: grpc.StatusCode
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "code": self.code.name, "message": self.message}


@dataclass(frozen=True)
class ModelHealth:
    """One model's state as the Health call reports it."""

    name: str
    active_version: str
    state: str
    versions_on_disk: tuple[str, ...]
    loaded_at: datetime | None
    last_error: str
    last_rollback: str


@dataclass(frozen=True)
class HealthReport:
    """The gateway's health: overall status and every model's state."""

    status: str  # SERVING or NOT_SERVING (UNSPECIFIED if the gateway did not say)
    gateway_id: str
    software_version: str
    uptime_seconds: float
    default_model: str
    models: tuple[ModelHealth, ...]

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"

    def to_dict(self) -> dict[str, Any]:
        data = _jsonable(self)
        assert isinstance(data, dict)
        return data


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output; -1 in ``shape`` marks a dynamic axis."""

    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelVersion:
    """One version of a model on the gateway's disk."""

    version: str
    state: str
    sha256: str
    size_bytes: int
    source: str
    received_at: datetime | None
    activated_at: datetime | None
    reason: str
    shadow_compared: int
    shadow_agreement: float


@dataclass(frozen=True)
class ModelSummary:
    """One model: its active version, every version on disk and its tensors."""

    name: str
    active_version: str
    state: str
    versions: tuple[ModelVersion, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    is_default: bool
    label_count: int
    rollback_target: str
    shadow_version: str

    def to_dict(self) -> dict[str, Any]:
        data = _jsonable(self)
        assert isinstance(data, dict)
        return data


def _jsonable(value: Any) -> Any:
    """Dataclasses, tuples, datetimes, ndarrays and status codes as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "shape": list(value.shape), "values": value.tolist()}
    if isinstance(value, grpc.StatusCode):
        return value.name
    return value
