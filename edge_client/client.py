"""The synchronous client of an edge inference gateway.

    with EdgeClient("127.0.0.1:50051") as client:
        prediction = client.predict("digit.png")
        print(prediction.label, prediction.confidence)

Every call has a deadline (``timeout``, 10 s by default), Predict, Health and
ListModels retry on UNAVAILABLE, and failures raise :class:`~edge_client.EdgeClientError`
subclasses, one per status code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy.typing as npt

from edge_client import requests
from edge_client.channel_config import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_TIMEOUT, channel_options
from edge_client.convert import (
    frame_result,
    health_from_proto,
    model_from_proto,
    prediction_from_proto,
)
from edge_client.errors import from_rpc_error, translate_rpc_errors
from edge_client.inputs import ImageInput
from edge_client.push import Progress as PushProgress
from edge_client.push import PushResult, push_bundle
from edge_client.requests import Frame
from edge_client.results import FrameFailure, HealthReport, ModelSummary, Prediction
from edge_contracts.proto.edge.v1 import (
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)

__all__ = ["DEFAULT_STREAM_TIMEOUT", "EdgeClient"]

# A stream is a camera feed: its deadline covers the whole feed, not one frame.
DEFAULT_STREAM_TIMEOUT = 3600.0


class EdgeClient:
    """A blocking client for ``edge.v1.InferenceService`` and ``edge.v1.ModelService``.

    ``credentials`` (see :func:`~edge_client.channel_credentials`) switch to TLS;
    ``token`` is sent as ``authorization: Bearer <token>`` on ModelService calls;
    ``options`` are extra gRPC channel options that override the defaults.
    """

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
        self._token = token
        opts = channel_options(max_message_bytes, options)
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        self._inference = inference_pb2_grpc.InferenceServiceStub(self._channel)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)

    def __enter__(self) -> EdgeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EdgeClient({self.target!r})"

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def predict(
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
        """Classify an image (path, encoded bytes, PIL image or uint8 array).

        Empty ``model`` means the gateway's default model, empty ``version`` the
        active one. ``timeout`` overrides the client's default deadline.
        """
        request = requests.predict_request(
            image=image,
            model=model,
            version=version,
            top_k=top_k,
            request_id=request_id,
            return_raw_output=return_raw_output,
        )
        return self._predict(request, timeout)

    def predict_tensor(
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
        """Run a ready tensor (batch axis included) through a model; ``name`` is its input."""
        request = requests.predict_request(
            tensor=array,
            tensor_name=name,
            model=model,
            version=version,
            top_k=top_k,
            request_id=request_id,
            return_raw_output=return_raw_output,
        )
        return self._predict(request, timeout)

    def predict_stream(
        self,
        frames: Iterable[Frame | ImageInput],
        *,
        model: str = "",
        version: str = "",
        top_k: int = 5,
        return_raw_output: bool = False,
        timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> Iterator[Prediction | FrameFailure]:
        """Stream frames (images or :class:`Frame`) and yield one answer per frame.

        A frame the gateway rejects yields a :class:`FrameFailure` and the stream goes
        on; a failure of the stream itself raises. Frames are read lazily, so a camera
        generator works. ``timeout`` bounds the whole stream. Streams are not retried.
        """
        errors = requests.RequestErrors()
        source = requests.stream_requests(
            frames, model=model, version=version, top_k=top_k, return_raw_output=return_raw_output
        )
        call = self._inference.PredictStream(errors.guard(source), timeout=timeout)
        try:
            for response in call:
                yield frame_result(response)
        except grpc.RpcError as err:
            if errors.error is not None:
                raise errors.error from None
            raise from_rpc_error(err) from err
        finally:
            call.cancel()

    def health(self, *, timeout: float | None = None) -> HealthReport:
        """The gateway's health report (answers even when no model is ready)."""
        with translate_rpc_errors():
            response: inference_pb2.HealthResponse = self._inference.Health(
                inference_pb2.HealthRequest(), timeout=self._deadline(timeout)
            )
        return health_from_proto(response)

    def list_models(
        self, model: str = "", *, timeout: float | None = None
    ) -> tuple[ModelSummary, ...]:
        """Every model on the gateway (or only ``model``) with its versions."""
        with translate_rpc_errors():
            response: model_pb2.ListModelsResponse = self._models.ListModels(
                requests.list_models_request(model),
                timeout=self._deadline(timeout),
                metadata=self._auth,
            )
        return tuple(model_from_proto(info) for info in response.models)

    def activate(self, model: str, version: str, *, timeout: float | None = None) -> ModelSummary:
        """Make ``version`` (already on the gateway's disk) the active one."""
        with translate_rpc_errors():
            response: model_pb2.ActivateModelResponse = self._models.ActivateModel(
                requests.activate_request(model, version),
                timeout=self._deadline(timeout),
                metadata=self._auth,
            )
        return model_from_proto(response.model)

    def rollback(
        self, model: str, reason: str = "", *, timeout: float | None = None
    ) -> ModelSummary:
        """Make the previously active version of ``model`` active again."""
        with translate_rpc_errors():
            response: model_pb2.RollbackModelResponse = self._models.RollbackModel(
                requests.rollback_request(model, reason),
                timeout=self._deadline(timeout),
                metadata=self._auth,
            )
        return model_from_proto(response.model)

    def push(
        self,
        bundle: str | os.PathLike[str],
        *,
        mode: str = "activate",
        progress: PushProgress | None = None,
        source: str = "edge-client",
        allow_older: bool = False,
    ) -> PushResult:
        """Upload a signed bundle over ModelUpdate (resuming after broken streams) and
        return the gateway's verdict: ACTIVE, STAGED, SHADOW or REJECTED with a reason.

        ``mode`` is "activate", "stage" or "shadow". ``allow_older`` asks a gateway with
        a trust root to install a bundle older (by signed sequence) than the one it has:
        a deliberate rollback (docs/security.md).
        """
        with translate_rpc_errors():
            return push_bundle(
                self._channel,
                Path(bundle),
                mode,
                token=self._token,
                source=source,
                progress=progress,
                allow_older=allow_older,
            )

    def _predict(self, request: inference_pb2.PredictRequest, timeout: float | None) -> Prediction:
        with translate_rpc_errors():
            response: inference_pb2.PredictResponse = self._inference.Predict(
                request, timeout=self._deadline(timeout)
            )
        return prediction_from_proto(response)

    def _deadline(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout
