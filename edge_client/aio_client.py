"""The asyncio client: :class:`~edge_client.EdgeClient`'s methods as coroutines.

    async with AsyncEdgeClient("127.0.0.1:50051") as client:
        prediction = await client.predict("digit.png")
        async for answer in client.predict_stream(camera_frames()):
            ...

Create it inside a running event loop. Requests are built and results converted by
the same code as the sync client (``edge_client.requests`` and ``edge_client.convert``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy.typing as npt

from edge_client import requests
from edge_client.aio_push import push_bundle_async
from edge_client.channel_config import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TIMEOUT, channel_options
from edge_client.client import DEFAULT_STREAM_TIMEOUT
from edge_client.convert import (
    frame_result,
    health_from_proto,
    model_from_proto,
    prediction_from_proto,
)
from edge_client.errors import from_rpc_error, translate_rpc_errors
from edge_client.inputs import ImageInput
from edge_client.push_protocol import Progress as PushProgress
from edge_client.push_protocol import PushResult
from edge_client.requests import Frame
from edge_client.results import FrameFailure, HealthReport, ModelSummary, Prediction
from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)

__all__ = ["AsyncEdgeClient"]


class AsyncEdgeClient:
    """A ``grpc.aio`` client with the same arguments, defaults and errors as EdgeClient."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.target = target
        self.timeout = timeout
        self._auth = requests.auth_metadata(token)
        opts = channel_options(max_message_bytes, options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=opts)
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)

    async def __aenter__(self) -> AsyncEdgeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncEdgeClient({self.target!r})"

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def predict(
        self,
        image: ImageInput,
        *,
        model: str = "",
        version: str = "",
        top_k: int = 5,
        request_id: str = "",
        return_raw_output: bool = False,
        timeout: float | None = None,
    ) -> Prediction:
        """See :meth:`EdgeClient.predict`."""
        request = requests.predict_request(
            image=image,
            model=model,
            version=version,
            top_k=top_k,
            request_id=request_id,
            return_raw_output=return_raw_output,
        )
        return await self._predict(request, timeout)

    async def predict_tensor(
        self,
        array: npt.ArrayLike,
        *,
        name: str = "",
        model: str = "",
        version: str = "",
        top_k: int = 5,
        request_id: str = "",
        return_raw_output: bool = False,
        timeout: float | None = None,
    ) -> Prediction:
        """See :meth:`EdgeClient.predict_tensor`."""
        request = requests.predict_request(
            tensor=array,
            tensor_name=name,
            model=model,
            version=version,
            top_k=top_k,
            request_id=request_id,
            return_raw_output=return_raw_output,
        )
        return await self._predict(request, timeout)

    async def predict_stream(
        self,
        frames: Iterable[Frame | ImageInput] | AsyncIterable[Frame | ImageInput],
        *,
        model: str = "",
        version: str = "",
        top_k: int = 5,
        return_raw_output: bool = False,
        timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> AsyncIterator[Prediction | FrameFailure]:
        """See :meth:`EdgeClient.predict_stream`; ``frames`` may also be an async iterable."""
        errors = requests.RequestErrors()
        source = requests.stream_requests_async(
            frames, model=model, version=version, top_k=top_k, return_raw_output=return_raw_output
        )
        call = self._inference.PredictStream(errors.guard_async(source), timeout=timeout)
        try:
            async for response in call:
                yield frame_result(response)
        except grpc.RpcError as err:
            if errors.error is not None:
                raise errors.error from None
            raise from_rpc_error(err) from err
        except asyncio.CancelledError:
            # grpc.aio cancels the call when the request iterator raises.
            if errors.error is not None:
                raise errors.error from None
            raise
        finally:
            call.cancel()

    async def health(self, *, timeout: float | None = None) -> HealthReport:
        """See :meth:`EdgeClient.health`."""
        with translate_rpc_errors():
            response: inference_pb2.HealthResponse = await self._inference.Health(
                inference_pb2.HealthRequest(), timeout=self._deadline(timeout)
            )
        return health_from_proto(response)

    async def list_models(
        self, model: str = "", *, timeout: float | None = None
    ) -> tuple[ModelSummary, ...]:
        """See :meth:`EdgeClient.list_models`."""
        with translate_rpc_errors():
            response: model_pb2.ListModelsResponse = await self._models.ListModels(
                requests.list_models_request(model),
                timeout=self._deadline(timeout),
                metadata=self._auth,
            )
        return tuple(model_from_proto(info) for info in response.models)

    async def activate(
        self, model: str, version: str, *, timeout: float | None = None
    ) -> ModelSummary:
        """See :meth:`EdgeClient.activate`."""
        with translate_rpc_errors():
            response: model_pb2.ActivateModelResponse = await self._models.ActivateModel(
                requests.activate_request(model, version),
                timeout=self._deadline(timeout),
                metadata=self._auth,
            )
        return model_from_proto(response.model)

    async def rollback(
        self, model: str, reason: str = "", *, timeout: float | None = None
    ) -> ModelSummary:
        """See :meth:`EdgeClient.rollback`."""
        with translate_rpc_errors():
            response: model_pb2.RollbackModelResponse = await self._models.RollbackModel(
                requests.rollback_request(model, reason),
                timeout=self._deadline(timeout),
                metadata=self._auth,
            )
        return model_from_proto(response.model)

    async def push(
        self,
        bundle: str | os.PathLike[str],
        *,
        mode: str = "activate",
        progress: PushProgress | None = None,
        source: str = "edge-client",
        allow_older: bool = False,
    ) -> PushResult:
        """See :meth:`EdgeClient.push` (the same push client, over this asyncio channel)."""
        with translate_rpc_errors():
            return await push_bundle_async(
                self._channel,
                Path(bundle),
                mode,
                metadata=self._auth,
                source=source,
                progress=progress,
                allow_older=allow_older,
            )

    async def _predict(
        self, request: inference_pb2.PredictRequest, timeout: float | None
    ) -> Prediction:
        with translate_rpc_errors():
            response: inference_pb2.PredictResponse = await self._inference.Predict(
                request, timeout=self._deadline(timeout)
            )
        return prediction_from_proto(response)

    def _deadline(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout
