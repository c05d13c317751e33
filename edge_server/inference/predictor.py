"""The request path: resolve the model, preprocess, run, classify, with stage timings.

Blocking work never runs on the event loop: decoding goes to the preprocess pool and
``session.run`` to the inference pool, so health checks and metrics answer while a
model computes. Each model admits a bounded number of requests at once, and every
call reserves the bytes it will hold (payload, decoded image, model input and output,
edge_server/inference/footprint.py) from the gateway's memory budget before decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import NamedTuple

import numpy as np

from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.errors import (
    InferenceFailed,
    InvalidInput,
)
from edge_server.inference.footprint import (
    PAYLOAD_COPIES,
    image_bytes,
    output_bytes,
    pixels_bytes,
)
from edge_server.inference.postprocess import Classification, classify
from edge_server.inference.preprocessing import pixels_to_tensor, preprocess_image
from edge_server.inference.request_plan import RequestPlan, image_plan
from edge_server.inference.runner import InferenceRunner, RunResult, cpu_timed_run
from edge_server.inference.shadow import ShadowRunner
from edge_server.inference.statistics import StatisticsBook
from edge_server.scheduling.admission import AdmissionControl

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


class Predictor:
    """Runs predictions against whatever version each model has active.

    Everything it reports to is given at construction: the shadow runner that also runs
    a staged version on a sample of requests, and ``on_result`` (the feedback recorder in
    pull mode), called on the event loop after each Predict.
    """

    def __init__(
        self,
        models: ServingCatalogue,
        admission: AdmissionControl,
        runner: InferenceRunner,
        preprocess_pool: Executor,
        max_image_pixels: int,
        statistics: StatisticsBook | None = None,
        shadow: ShadowRunner | None = None,
        on_result: ResultObserver | None = None,
    ) -> None:
        self._models = models
        self.admission = admission
        self.runner = runner
        self._preprocess_pool = preprocess_pool
        self._max_pixels = max_image_pixels
        self.statistics = statistics or StatisticsBook()
        self.shadow = shadow
        self.on_result = on_result

    def queue_depth(self, model_name: str) -> int:
        return self.admission.queue_depth(model_name)

    def admit(
        self,
        model_name: str,
        model_version: str = "",
        deadline: float | None = None,
        footprint: Callable[[ServingModel], int] | None = None,
    ) -> contextlib.AbstractContextManager[ServingModel]:
        """Resolve the version a request runs on, hold a slot in its model's queue and
        reserve ``footprint(model)`` bytes of the memory budget.

        The version is fixed here: a hot swap during the request does not change it.
        """
        return self.admission.slot(model_name, model_version, deadline, footprint)

    def image_footprint(self, model: ServingModel, data: bytes) -> int:
        """Bytes one encoded image holds until it is a model input row (never raises:
        what cannot be decoded is refused by the decoder, as before)."""
        plan = model.image_plan
        return len(data) if plan is None else image_bytes(data, plan, self._max_pixels)

    def footprint(self, model: ServingModel, request: PredictInput) -> int:
        """Bytes a Predict call holds: its input as sent, what decoding it makes, the
        model input and output."""
        if request.image is not None:
            return self.image_footprint(model, request.image) + output_bytes(model.outputs, 1)
        tensor = request.tensor
        if tensor is None:
            return 0
        if tensor.dtype == np.uint8 and model.image_plan is not None:
            return pixels_bytes(tensor, model.image_plan) + output_bytes(model.outputs, 1)
        return PAYLOAD_COPIES * tensor.nbytes + output_bytes(model.outputs, _rows(tensor))

    async def preprocess(self, model: ServingModel, image: bytes) -> np.ndarray:
        """Encoded image -> [1, ...] input batch, in the preprocess pool."""
        plan = image_plan(model)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._preprocess_pool, preprocess_image, image, plan, self._max_pixels
        )

    async def run(
        self, model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
    ) -> RunResult:
        """session.run through the runner (batched when batching applies), timed."""
        return await self.runner.run(model, feeds, deadline)

    async def predict(self, request: PredictInput) -> PredictOutput:
        received = time.perf_counter()
        model, held = self.admission.take_with_bytes(
            request.model_name,
            request.model_version,
            request.deadline,
            functools.partial(self.footprint, request=request),
        )
        try:
            plan = self.runner.plan(model)
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
            self.admission.release(model, received)
            self.admission.release_bytes(held)
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

    def _decode_work(self, model: ServingModel, request: PredictInput) -> Callable[[], np.ndarray]:
        """The model input from an encoded image or uint8 pixels, as a call to make."""
        plan = image_plan(model)
        if request.image is not None:
            return functools.partial(preprocess_image, request.image, plan, self._max_pixels)
        assert request.tensor is not None
        return functools.partial(pixels_to_tensor, request.tensor, plan)

    async def _decode(self, model: ServingModel, request: PredictInput, inline: bool) -> np.ndarray:
        """Decode inline or in the preprocess pool, its CPU time recorded."""
        work = self._decode_work(model, request)
        if inline:
            batch, seconds = _timed(work)
        else:
            loop = asyncio.get_running_loop()
            batch, seconds = await loop.run_in_executor(self._preprocess_pool, _timed, work)
        self.runner.inline_policy.record(model.name, model.version, "preprocess", seconds)
        return batch

    async def _predict_admitted(
        self,
        model: ServingModel,
        plan: RequestPlan,
        request: PredictInput,
        received: float,
        decode: bool,
    ) -> PredictOutput:
        policy = self.runner.inline_policy
        inline = policy.inline(model.name, model.version, decode)
        if decode and not inline and plan.may_fuse and policy.fused(model.name, model.version):
            work = await self._fused(model, request)
        else:
            work = await self._staged(model, plan, request, decode, inline)
        feeds, outputs, preprocessed, queue_s, inference_s, ran = work
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

    async def _fused(self, model: ServingModel, request: PredictInput) -> _Work:
        """Decode and run in one inference thread (an expensive image model on a CPU)."""
        fused = await self.runner.decode_and_run(
            model, model.inputs[0].name, self._decode_work(model, request), request.deadline
        )
        ran = time.perf_counter()
        preprocessed = ran - fused.inference_s - fused.queue_s
        return _Work(
            fused.feeds, fused.outputs, preprocessed, fused.queue_s, fused.inference_s, ran
        )

    async def _staged(
        self,
        model: ServingModel,
        plan: RequestPlan,
        request: PredictInput,
        decode: bool,
        inline: bool,
    ) -> _Work:
        """Decode (inline or in the preprocess pool), then run (inline or through the
        runner: batcher and inference pool)."""
        if decode:
            feeds = {model.inputs[0].name: await self._decode(model, request, inline)}
        elif request.tensor is not None:
            name = plan.tensor_input(model, request.tensor, request.tensor_name)
            feeds = {name: request.tensor}
        else:
            raise InvalidInput("the request has no input: set image or tensor", field="input")
        preprocessed = time.perf_counter()
        if inline:
            outputs, started, ran, cpu = cpu_timed_run(model, feeds, request.deadline)
            self.runner.inline_policy.record(model.name, model.version, "run", cpu)
            return _Work(feeds, outputs, preprocessed, started - preprocessed, ran - started, ran)
        run = await self.runner.run(model, feeds, request.deadline)
        ran = time.perf_counter()
        return _Work(feeds, run.outputs, preprocessed, run.queue_s, run.inference_s, ran)


class _Work(NamedTuple):
    """What a Predict computed and when (perf_counter times and durations)."""

    feeds: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    preprocessed: float
    queue_s: float
    inference_s: float
    ran: float


def _timed(work: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    """``work()`` and the CPU time this thread spent in it (runner.cpu_timed_run: why)."""
    cpu = time.thread_time()
    result = work()
    return result, time.thread_time() - cpu


def _rows(tensor: np.ndarray | None) -> int:
    return int(tensor.shape[0]) if tensor is not None and tensor.ndim > 0 else 1
