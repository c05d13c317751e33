"""The request path: resolve the model, preprocess, run, classify, with stage timings.

Blocking work never runs on the event loop: decoding goes to the preprocess pool and
``session.run`` to the inference pool, so health checks and metrics answer while a
model computes. Each model admits a bounded number of requests at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from edge_server.domain.batching import BatchPolicy, DynamicBatcher
from edge_server.domain.inline_policy import InlinePolicy
from edge_server.domain.model_manager import ModelManager, ServingModel
from edge_server.domain.postprocess import Classification, classify
from edge_server.domain.preprocessing import ImagePlan, pixels_to_tensor, preprocess_image
from edge_server.domain.shadow import ShadowRunner
from edge_server.domain.statistics import StatisticsBook
from edge_server.domain.tensors import TensorSpec
from edge_server.errors import (
    DeadlineExpired,
    InferenceFailed,
    InvalidInput,
    Overloaded,
    ShuttingDown,
)

logger = logging.getLogger(__name__)


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


# Called on the event loop after each Predict (output None when it failed); must be cheap.
ResultObserver = Callable[[ServingModel, PredictInput, PredictOutput | None], None]


def _us(seconds: float) -> int:
    return max(0, int(seconds * 1_000_000))


def _timed_run(
    model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
) -> tuple[list[np.ndarray], float, float]:
    """Runs in an inference thread; returns outputs with start and end times."""
    started = time.perf_counter()
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExpired("the request's deadline passed while it waited for inference")
    try:
        outputs = model.session.run(feeds)
    except Exception as exc:
        logger.error("model %s version %s failed to run: %s", model.name, model.version, exc)
        raise InferenceFailed(
            f"model {model.name!r} version {model.version!r} failed while running this input; "
            "the gateway logged the cause"
        ) from exc
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


@dataclass(frozen=True)
class BatchingDefaults:
    """Server-wide batching settings; a model's manifest `batching` section overrides them."""

    enabled: bool = True
    max_batch_size: int = 8
    max_queue_delay_us: int = 500


def batch_policy(model: ServingModel, defaults: BatchingDefaults) -> BatchPolicy | None:
    """The model's batching policy, or None when batching does not apply to it."""
    config = model.manifest.batching
    enabled = defaults.enabled if config is None or config.enabled is None else config.enabled
    if not enabled:
        return None
    if not all(spec.has_dynamic_batch for spec in (*model.inputs, *model.outputs)):
        return None  # rows can only be stacked and split along a dynamic batch axis
    if config is None:
        return BatchPolicy(defaults.max_batch_size, defaults.max_queue_delay_us)
    return BatchPolicy(
        config.max_batch_size, config.max_queue_delay_us, config.preferred_batch_sizes
    )


@dataclass(frozen=True)
class RunResult:
    """Outputs of one session.run with where its time went."""

    outputs: list[np.ndarray]
    queue_s: float
    inference_s: float


class Predictor:
    """Runs predictions against whatever version each model has active."""

    def __init__(
        self,
        models: ModelManager,
        preprocess_pool: Executor,
        inference_pool: Executor,
        max_queue_size: int,
        max_image_pixels: int,
        statistics: StatisticsBook | None = None,
        batching: BatchingDefaults | None = None,
        inference_workers: int = 1,
        on_batch: Callable[[str, int], None] | None = None,
        inline_threshold_us: int = 0,
    ) -> None:
        self._models = models
        self._preprocess_pool = preprocess_pool
        self._inference_pool = inference_pool
        self._max_queue = max_queue_size
        self._max_pixels = max_image_pixels
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self.statistics = statistics or StatisticsBook()
        self.shadow: ShadowRunner | None = None
        self.batching = batching or BatchingDefaults()
        self.batcher = DynamicBatcher(
            self._run_in_pool,
            self.queue_depth,
            workers=inference_workers,
            on_batch=on_batch,
        )
        self.inline_policy = InlinePolicy(inline_threshold_us)
        self.accepting = True
        self.on_result: ResultObserver | None = None  # e.g. the feedback recorder

    def queue_depth(self, model_name: str) -> int:
        return self._in_flight[model_name]

    @contextlib.contextmanager
    def admit(self, model_name: str, model_version: str = "") -> Iterator[ServingModel]:
        """Resolve the version a request runs on and hold a slot in its model's queue.

        The version is fixed here: a hot swap during the request does not change it.
        """
        if not self.accepting:
            raise ShuttingDown("the gateway is shutting down; send the request elsewhere")
        model = self._models.resolve(model_name, model_version)
        if self._in_flight[model.name] >= self._max_queue:
            raise Overloaded(
                f"model {model.name!r} has {self._max_queue} requests in progress, the "
                "gateway's limit; retry after a short pause",
            )
        self._in_flight[model.name] += 1
        try:
            yield model
        finally:
            self._in_flight[model.name] -= 1

    async def preprocess(self, model: ServingModel, image: bytes) -> np.ndarray:
        """Encoded image -> [1, ...] input batch, in the preprocess pool."""
        plan = _image_plan(model)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._preprocess_pool, preprocess_image, image, plan, self._max_pixels
        )

    async def _run_in_pool(
        self, model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
    ) -> tuple[list[np.ndarray], float, float]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._inference_pool, _timed_run, model, feeds, deadline)

    async def run(
        self, model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
    ) -> RunResult:
        """session.run in the inference pool, through the model's dynamic batcher when
        batching applies; times the wait and the run separately."""
        policy = batch_policy(model, self.batching)
        if policy is not None:
            run = await self.batcher.submit(model, feeds, deadline, policy)
            # A shared run costs more than a lone one: a conservative estimate for inlining.
            self.inline_policy.record(model.name, model.version, "run", run.inference_s)
            return RunResult(run.outputs, run.queue_s, run.inference_s)
        submitted = time.perf_counter()
        outputs, started, finished = await self._run_in_pool(model, feeds, deadline)
        self.inline_policy.record(model.name, model.version, "run", finished - started)
        return RunResult(outputs, started - submitted, finished - started)

    async def predict(self, request: PredictInput) -> PredictOutput:
        received = time.perf_counter()
        with self.admit(request.model_name, request.model_version) as model:
            try:
                output = await self._predict_admitted(model, request, received)
            except (Exception, asyncio.CancelledError) as exc:
                # A cancelled call (deadline passed, client gone) counts as a failure too.
                self.statistics.record_failure(
                    model.name,
                    model.version,
                    time.perf_counter() - received,
                    model_fault=isinstance(exc, InferenceFailed),
                )
                if self.on_result is not None and isinstance(exc, Exception):
                    self.on_result(model, request, None)
                raise
        t = output.timings
        self.statistics.record_success(
            model.name,
            model.version,
            rows=1
            if request.image is not None or _pixel_request(model, request)
            else _rows(request.tensor),
            total_s=t.total_us / 1e6,
            preprocess_s=t.preprocess_us / 1e6,
            queue_s=t.queue_us / 1e6,
            infer_s=t.inference_us / 1e6,
            postprocess_s=t.postprocess_us / 1e6,
        )
        if self.on_result is not None:
            self.on_result(model, request, output)
        return output

    async def _prepare(
        self, model: ServingModel, request: PredictInput, inline: bool
    ) -> tuple[str, np.ndarray]:
        """The model input for this request: decoded image, pixels or a checked tensor."""
        if request.image is not None or (
            request.tensor is not None and _is_pixel_tensor(model, request.tensor)
        ):
            plan = _image_plan(model)
            if request.image is not None:
                work = functools.partial(preprocess_image, request.image, plan, self._max_pixels)
            else:
                assert request.tensor is not None
                work = functools.partial(pixels_to_tensor, request.tensor, plan)
            if inline:
                batch, seconds = _timed(work)
            else:
                loop = asyncio.get_running_loop()
                batch, seconds = await loop.run_in_executor(self._preprocess_pool, _timed, work)
            self.inline_policy.record(model.name, model.version, "preprocess", seconds)
            return model.inputs[0].name, batch
        if request.tensor is not None:
            return validate_tensor(model, request.tensor, request.tensor_name), request.tensor
        raise InvalidInput("the request has no input: set image or tensor", field="input")

    async def _predict_admitted(
        self, model: ServingModel, request: PredictInput, received: float
    ) -> PredictOutput:
        needs_decode = request.image is not None or (
            request.tensor is not None and _is_pixel_tensor(model, request.tensor)
        )
        inline = self.inline_policy.inline(model.name, model.version, needs_decode)
        input_name, batch = await self._prepare(model, request, inline)
        preprocessed = time.perf_counter()
        feeds = {input_name: batch}
        if inline:
            outputs, started, finished = _timed_run(model, feeds, request.deadline)
            result = RunResult(outputs, started - preprocessed, finished - started)
        else:
            result = await self.run(model, feeds, request.deadline)
        run_finished = time.perf_counter()
        if self.shadow is not None:
            self.shadow.offer(model, feeds, result.outputs[0], request.image)
        classification = classify(result.outputs[0], model.manifest, request.top_k)
        finished = time.perf_counter()
        return PredictOutput(
            model_name=model.name,
            model_version=model.version,
            classification=classification,
            raw_output=result.outputs[0] if request.return_raw_output else None,
            timings=StageTimings(
                preprocess_us=_us(preprocessed - received),
                queue_us=_us(result.queue_s),
                inference_us=_us(result.inference_s),
                postprocess_us=_us(finished - run_finished),
                total_us=_us(finished - received),
            ),
        )


def _image_plan(model: ServingModel) -> ImagePlan:
    if model.image_plan is None:
        raise InvalidInput(
            f"model {model.name!r} cannot take images: {model.image_plan_error}; "
            "send a tensor instead",
            field="image",
        )
    return model.image_plan


def _timed(work: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def _is_pixel_tensor(model: ServingModel, tensor: np.ndarray) -> bool:
    """uint8 pixels for an image model whose own input is not uint8: preprocess them."""
    return (
        tensor.dtype == np.uint8
        and model.image_plan is not None
        and model.inputs[0].dtype != "uint8"
    )


def _pixel_request(model: ServingModel, request: PredictInput) -> bool:
    return request.tensor is not None and _is_pixel_tensor(model, request.tensor)


def _rows(tensor: np.ndarray | None) -> int:
    return int(tensor.shape[0]) if tensor is not None and tensor.ndim > 0 else 1
