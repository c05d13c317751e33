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
from typing import NamedTuple

import numpy as np

from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.errors import (
    DeadlineExpired,
    InferenceFailed,
    InvalidInput,
    Overloaded,
    ShuttingDown,
)
from edge_server.inference.postprocess import Classification, classify
from edge_server.inference.preprocessing import pixels_to_tensor, preprocess_image
from edge_server.inference.request_plan import BatchingDefaults as BatchingDefaults
from edge_server.inference.request_plan import RequestPlan, image_plan
from edge_server.inference.request_plan import batch_policy as batch_policy
from edge_server.inference.request_plan import validate_tensor as validate_tensor
from edge_server.inference.shadow import ShadowRunner
from edge_server.inference.statistics import StatisticsBook
from edge_server.scheduling.admission import DrainEstimator
from edge_server.scheduling.batching import DynamicBatcher
from edge_server.scheduling.inline_policy import InlinePolicy

logger = logging.getLogger(__name__)


# NamedTuples, not frozen dataclasses: these are built on every request, and a frozen
# dataclass pays an object.__setattr__ per field.
class PredictInput(NamedTuple):
    """One Predict call, already converted from the wire."""

    model_name: str = ""
    model_version: str = ""
    image: bytes | None = None
    tensor: np.ndarray | None = None
    tensor_name: str = ""
    top_k: int = 0
    return_raw_output: bool = False
    deadline: float | None = None  # time.monotonic() value, None = no deadline


class StageTimings(NamedTuple):
    preprocess_us: int
    queue_us: int
    inference_us: int
    postprocess_us: int
    total_us: int


class PredictOutput(NamedTuple):
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


class RunResult(NamedTuple):
    """Outputs of one session.run with where its time went."""

    outputs: list[np.ndarray]
    queue_s: float
    inference_s: float


class Predictor:
    """Runs predictions against whatever version each model has active."""

    def __init__(
        self,
        models: ServingCatalogue,
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
        self.drain = DrainEstimator()
        self._plans: dict[str, RequestPlan] = {}
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

    def _admit(self, model_name: str, model_version: str, deadline: float | None) -> ServingModel:
        """Resolve the version and take a queue slot; the caller must give it back
        through ``_release``."""
        if not self.accepting:
            raise ShuttingDown("the gateway is shutting down; send the request elsewhere")
        model = self._models.resolve(model_name, model_version)
        ahead = self._in_flight[model.name]
        if ahead >= self._max_queue:
            raise Overloaded(
                f"model {model.name!r} has {self._max_queue} requests in progress, the "
                "gateway's limit; retry after a short pause",
                self.drain.retry_hint_ms(model.name, ahead),
            )
        if deadline is not None and ahead:
            wait = self.drain.wait_s(model.name, ahead)
            left = deadline - time.monotonic()
            if wait is not None and wait > left:
                raise Overloaded(
                    f"model {model.name!r} has {ahead} requests ahead, about "
                    f"{wait * 1000:.0f} ms of work, and this call has {max(0.0, left) * 1000:.0f}"
                    " ms left before its deadline; retry later or with a longer deadline",
                    self.drain.retry_hint_ms(model.name, ahead),
                )
        self._in_flight[model.name] += 1
        return model

    def _release(self, model: ServingModel, received: float) -> None:
        self._in_flight[model.name] -= 1
        self.drain.completed(model.name, received)

    @contextlib.contextmanager
    def admit(
        self, model_name: str, model_version: str = "", deadline: float | None = None
    ) -> Iterator[ServingModel]:
        """Resolve the version a request runs on and hold a slot in its model's queue.

        The version is fixed here: a hot swap during the request does not change it.
        """
        received = time.perf_counter()
        model = self._admit(model_name, model_version, deadline)
        try:
            yield model
        finally:
            self._release(model, received)

    def _plan(self, model: ServingModel) -> RequestPlan:
        """The per-version facts of ``model`` (rebuilt when another version shows up)."""
        plan = self._plans.get(model.name)
        if plan is None or not plan.serves(model, self.batching):
            plan = self._plans[model.name] = RequestPlan(model, self.batching)
        return plan

    async def preprocess(self, model: ServingModel, image: bytes) -> np.ndarray:
        """Encoded image -> [1, ...] input batch, in the preprocess pool."""
        plan = image_plan(model)
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
        policy = self._plan(model).policy
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
        model = self._admit(request.model_name, request.model_version, request.deadline)
        try:
            plan = self._plan(model)
            tensor = request.tensor
            decode = request.image is not None or (
                tensor is not None and plan.is_pixel_tensor(tensor)
            )
            output = await self._predict_admitted(model, plan, request, received, decode)
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
        finally:
            self._release(model, received)
        t = output.timings
        self.statistics.record_success(
            model.name,
            model.version,
            rows=1 if decode else _rows(tensor),
            total_s=t.total_us / 1e6,
            preprocess_s=t.preprocess_us / 1e6,
            queue_s=t.queue_us / 1e6,
            infer_s=t.inference_us / 1e6,
            postprocess_s=t.postprocess_us / 1e6,
        )
        if self.on_result is not None:
            self.on_result(model, request, output)
        return output

    async def _decode(
        self, model: ServingModel, request: PredictInput, inline: bool
    ) -> tuple[str, np.ndarray]:
        """The model input from an encoded image or uint8 pixels, timed for inlining."""
        plan = image_plan(model)
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

    async def _predict_admitted(
        self,
        model: ServingModel,
        plan: RequestPlan,
        request: PredictInput,
        received: float,
        decode: bool,
    ) -> PredictOutput:
        inline = self.inline_policy.inline(model.name, model.version, decode)
        if decode:
            input_name, batch = await self._decode(model, request, inline)
        elif request.tensor is not None:
            batch = request.tensor
            input_name = plan.tensor_input(model, batch, request.tensor_name)
        else:
            raise InvalidInput("the request has no input: set image or tensor", field="input")
        preprocessed = time.perf_counter()
        feeds = {input_name: batch}
        if inline:
            outputs, started, ran = _timed_run(model, feeds, request.deadline)
            queue_s, inference_s = started - preprocessed, ran - started
        else:
            outputs, queue_s, inference_s = await self.run(model, feeds, request.deadline)
            ran = time.perf_counter()
        if self.shadow is not None:
            self.shadow.offer(model, feeds, outputs[0], request.image)
        classification = classify(outputs[0], model.manifest, request.top_k)
        finished = time.perf_counter()
        return PredictOutput(
            model.name,
            model.version,
            classification,
            outputs[0] if request.return_raw_output else None,
            StageTimings(
                _us(preprocessed - received),
                _us(queue_s),
                _us(inference_s),
                _us(finished - ran),
                _us(finished - received),
            ),
        )


def _timed(work: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def _rows(tensor: np.ndarray | None) -> int:
    return int(tensor.shape[0]) if tensor is not None and tensor.ndim > 0 else 1
