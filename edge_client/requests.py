"""Request building shared by the sync and asyncio clients.

Both clients validate arguments and build protobuf requests here, so the two can
never disagree about what a call sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy.typing as npt

from edge_client.convert import ndarray_to_tensor
from edge_client.inputs import ImageInput, encode_image
from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2

__all__ = [
    "Frame",
    "RequestErrors",
    "activate_request",
    "auth_metadata",
    "list_models_request",
    "predict_request",
    "rollback_request",
    "stream_request",
    "stream_requests",
    "stream_requests_async",
]

_MAX_TOP_K = 2**32 - 1
_T = TypeVar("_T")


@dataclass(frozen=True)
class Frame:
    """One input of a PredictStream call: an image or a tensor, and its request id.

    Plain images may be streamed directly; wrap them in a ``Frame`` to send a tensor
    or to choose the request id. Frames without one get their position ("0", "1", ...)
    so every answer can be matched to its frame.
    """

    image: ImageInput | None = None
    tensor: npt.NDArray[Any] | None = None
    tensor_name: str = ""
    request_id: str = ""


def predict_request(
    *,
    image: ImageInput | None = None,
    tensor: npt.ArrayLike | None = None,
    tensor_name: str = "",
    model: str = "",
    version: str = "",
    top_k: int = 5,
    request_id: str = "",
    return_raw_output: bool = False,
) -> inference_pb2.PredictRequest:
    """A PredictRequest for exactly one of ``image`` or ``tensor``."""
    if (image is None) == (tensor is None):
        raise ValueError("give exactly one of image or tensor")
    if not 0 <= top_k <= _MAX_TOP_K:
        raise ValueError(f"top_k must be between 0 and {_MAX_TOP_K} (0 means 5), not {top_k}")
    request = inference_pb2.PredictRequest(
        model_name=model,
        model_version=version,
        top_k=top_k,
        request_id=request_id,
        return_raw_output=return_raw_output,
    )
    if image is not None:
        request.image = encode_image(image)
    else:
        request.tensor.CopyFrom(ndarray_to_tensor(tensor, tensor_name))  # type: ignore[arg-type]
    return request


def stream_request(
    index: int,
    frame: Frame | ImageInput,
    *,
    model: str = "",
    version: str = "",
    top_k: int = 5,
    return_raw_output: bool = False,
) -> inference_pb2.PredictStreamRequest:
    """The PredictStreamRequest for the ``index``-th frame of a stream."""
    if not isinstance(frame, Frame):
        frame = Frame(image=frame)
    request = predict_request(
        image=frame.image,
        tensor=frame.tensor,
        tensor_name=frame.tensor_name,
        model=model,
        version=version,
        top_k=top_k,
        request_id=frame.request_id or str(index),
        return_raw_output=return_raw_output,
    )
    return inference_pb2.PredictStreamRequest(request=request)


def stream_requests(
    frames: Iterable[Frame | ImageInput], **options: Any
) -> Iterator[inference_pb2.PredictStreamRequest]:
    """Lazily build the requests of a stream; ``options`` as for :func:`stream_request`."""
    for index, frame in enumerate(frames):
        yield stream_request(index, frame, **options)


def list_models_request(model: str = "") -> model_pb2.ListModelsRequest:
    return model_pb2.ListModelsRequest(model_name=model)


def activate_request(model: str, version: str) -> model_pb2.ActivateModelRequest:
    if not model or not version:
        raise ValueError("activate needs a model name and a version")
    return model_pb2.ActivateModelRequest(model_name=model, model_version=version)


def rollback_request(model: str, reason: str = "") -> model_pb2.RollbackModelRequest:
    if not model:
        raise ValueError("rollback needs a model name")
    return model_pb2.RollbackModelRequest(model_name=model, reason=reason)


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the management bearer token, if there is one."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class RequestErrors:
    """Remembers the exception that ended a stream's request iterator.

    gRPC consumes request iterators itself and turns their exceptions into a bare
    CANCELLED; the clients raise the remembered exception (say, an unreadable image
    file) instead.
    """

    def __init__(self) -> None:
        self.error: Exception | None = None

    def guard(self, requests: Iterator[_T]) -> Iterator[_T]:
        try:
            yield from requests
        except Exception as exc:
            self.error = exc
            raise

    async def guard_async(self, requests: AsyncIterator[_T]) -> AsyncIterator[_T]:
        try:
            async for request in requests:
                yield request
        except Exception as exc:
            self.error = exc
            raise


async def stream_requests_async(
    frames: Iterable[Frame | ImageInput] | AsyncIterable[Frame | ImageInput], **options: Any
) -> AsyncIterator[inference_pb2.PredictStreamRequest]:
    """:func:`stream_requests` for plain or async iterables of frames."""
    if isinstance(frames, AsyncIterable):
        index = 0
        async for frame in frames:
            yield stream_request(index, frame, **options)
            index += 1
    else:
        for index, frame in enumerate(frames):
            yield stream_request(index, frame, **options)
