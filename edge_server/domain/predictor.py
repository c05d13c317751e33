"""The request path: resolve the model, preprocess, run, classify, with stage timings.

Blocking work never runs on the event loop: decoding goes to the preprocess pool and
``session.run`` to the inference pool, so health checks and metrics answer while a
model computes. Each model admits a bounded number of requests at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from edge_server.domain.model_manager import ModelManager, ServingModel
from edge_server.domain.postprocess import Classification, classify
from edge_server.domain.preprocessing import preprocess_image
from edge_server.domain.tensors import TensorSpec
from edge_server.errors import DeadlineExpired, InvalidInput, Overloaded, ShuttingDown


@dataclass(frozen=True)
class PredictInput:
    """One Predict call, already converted from the wire."""

    model_name: str = ""
    model_version: str = ""
    image: bytes | None = None
    tensor: np.ndarray | None = None
    tensor_name: str = ""
    top_k: int = 0
    return_raw_output: bool = False
    deadline: float | None = None  # time.monotonic() value, None = no deadline


@dataclass(frozen=True)
class StageTimings:
    preprocess_us: int
    queue_us: int
    inference_us: int
    postprocess_us: int
    total_us: int


@dataclass(frozen=True)
class PredictOutput:
    model_name: str
    model_version: str
    classification: Classification
    raw_output: np.ndarray | None
    timings: StageTimings


def _us(seconds: float) -> int:
    return max(0, int(seconds * 1_000_000))


def _timed_run(
    model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
) -> tuple[list[np.ndarray], float, float]:
    """Runs in an inference thread; returns outputs with start and end times."""
    started = time.perf_counter()
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExpired("the request's deadline passed while it waited for inference")
    outputs = model.session.run(feeds)
    return outputs, started, time.perf_counter()


def validate_tensor(model: ServingModel, array: np.ndarray, name: str) -> str:
    """Check a tensor against the model's inputs; returns the input name it feeds."""
    inputs = model.inputs
    if len(inputs) != 1:
        names = ", ".join(spec.name for spec in inputs)
        raise InvalidInput(
            f"model {model.name!r} takes {len(inputs)} inputs ({names}); Predict carries "
            "one tensor, so use the V2 ModelInfer RPC for this model",
            field="tensor",
        )
    spec: TensorSpec = inputs[0]
    if name and name != spec.name:
        raise InvalidInput(
            f"tensor name {name!r} is not an input of model {model.name!r}; its input is "
            f"{spec.describe()}",
            field="tensor.name",
        )
    if array.dtype != np.dtype(spec.dtype):
        raise InvalidInput(
            f"tensor dtype {array.dtype} does not match input {spec.describe()}",
            field="tensor.dtype",
        )
    if not spec.accepts_shape(tuple(array.shape)):
        raise InvalidInput(
            f"tensor shape {list(array.shape)} does not fit input {spec.describe()} "
            "('?' = any size)",
            field="tensor.shape",
        )
    return spec.name


class Predictor:
    """Runs predictions against whatever version each model has active."""

    def __init__(
        self,
        models: ModelManager,
        preprocess_pool: Executor,
        inference_pool: Executor,
        max_queue_size: int,
        max_image_pixels: int,
    ) -> None:
        self._models = models
        self._preprocess_pool = preprocess_pool
        self._inference_pool = inference_pool
        self._max_queue = max_queue_size
        self._max_pixels = max_image_pixels
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self.accepting = True

    def queue_depth(self, model_name: str) -> int:
        return self._in_flight[model_name]

    async def predict(self, request: PredictInput) -> PredictOutput:
        if not self.accepting:
            raise ShuttingDown("the gateway is shutting down; send the request elsewhere")
        received = time.perf_counter()
        model = self._models.resolve(request.model_name, request.model_version)
        if self._in_flight[model.name] >= self._max_queue:
            raise Overloaded(
                f"model {model.name!r} has {self._max_queue} requests in progress, the "
                "gateway's limit; retry after a short pause",
            )
        self._in_flight[model.name] += 1
        try:
            return await self._predict_admitted(model, request, received)
        finally:
            self._in_flight[model.name] -= 1

    async def _predict_admitted(
        self, model: ServingModel, request: PredictInput, received: float
    ) -> PredictOutput:
        loop = asyncio.get_running_loop()
        if request.image is not None:
            if model.image_plan is None:
                raise InvalidInput(
                    f"model {model.name!r} cannot take images: {model.image_plan_error}; "
                    "send a tensor instead",
                    field="image",
                )
            batch = await loop.run_in_executor(
                self._preprocess_pool,
                preprocess_image,
                request.image,
                model.image_plan,
                self._max_pixels,
            )
            input_name = model.inputs[0].name
        elif request.tensor is not None:
            batch = request.tensor
            input_name = validate_tensor(model, batch, request.tensor_name)
        else:
            raise InvalidInput("the request has no input: set image or tensor", field="input")
        preprocessed = time.perf_counter()
        outputs, run_started, run_finished = await loop.run_in_executor(
            self._inference_pool, _timed_run, model, {input_name: batch}, request.deadline
        )
        classification = classify(outputs[0], model.manifest, request.top_k)
        finished = time.perf_counter()
        return PredictOutput(
            model_name=model.name,
            model_version=model.version,
            classification=classification,
            raw_output=outputs[0] if request.return_raw_output else None,
            timings=StageTimings(
                preprocess_us=_us(preprocessed - received),
                queue_us=_us(run_started - preprocessed),
                inference_us=_us(run_finished - run_started),
                postprocess_us=_us(finished - run_finished),
                total_us=_us(finished - received),
            ),
        )
