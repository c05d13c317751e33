"""Python client of the edge inference gateway (``edge.v1`` over gRPC).

    from edge_client import EdgeClient

    with EdgeClient("127.0.0.1:50051") as client:
        print(client.predict("digit.png").label)

``AsyncEdgeClient`` offers the same calls for asyncio. Every failure is an
``EdgeClientError`` subclass named after its gRPC status code. Tensor helpers
(``ndarray_to_tensor``, ``tensor_to_ndarray``) live in ``edge_client.convert``.
"""

from edge_client.aio_client import AsyncEdgeClient
from edge_client.client import EdgeClient
from edge_client.errors import (
    Aborted,
    DeadlineExceeded,
    EdgeClientError,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unknown,
    from_rpc_error,
)
from edge_client.inputs import ImageInput
from edge_client.requests import Frame
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
from edge_client.tls import channel_credentials

__all__ = [
    "Aborted",
    "AsyncEdgeClient",
    "ClassScore",
    "DeadlineExceeded",
    "EdgeClient",
    "EdgeClientError",
    "FailedPrecondition",
    "Frame",
    "FrameFailure",
    "HealthReport",
    "ImageInput",
    "Internal",
    "InvalidArgument",
    "ModelHealth",
    "ModelSummary",
    "ModelVersion",
    "NotFound",
    "PermissionDenied",
    "Prediction",
    "ResourceExhausted",
    "TensorSpec",
    "Timings",
    "Unauthenticated",
    "Unavailable",
    "Unknown",
    "channel_credentials",
    "from_rpc_error",
]
