"""``session.run`` off the event loop: through the model's dynamic batcher when batching
applies, else straight into the inference pool; each run's CPU time recorded for the inline policy.

The runner knows nothing of admission or of what a request means: the predictor (Predict),
the tensor path (V2 ModelInfer) and the shadow runner all run models through it, so a
shadow inference shares the same pool and batches as live traffic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import NamedTuple

import numpy as np

from edge_server.catalogue.serving import ServingModel
from edge_server.errors import DeadlineExpired, InferenceFailed
from edge_server.inference.request_plan import BatchingDefaults, RequestPlan
from edge_server.scheduling.batching import DynamicBatcher, PendingCount
from edge_server.scheduling.inline_policy import InlinePolicy

logger = logging.getLogger(__name__)


class RunResult(NamedTuple):
    """Outputs of one session.run with where its time went."""

    outputs: list[np.ndarray]
    queue_s: float
    inference_s: float


def timed_run(
    model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
) -> tuple[list[np.ndarray], float, float]:
    """One session.run (in an inference thread, or inline); outputs with start and end."""
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


def cpu_timed_run(
    model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
) -> tuple[list[np.ndarray], float, float, float]:
    """``timed_run`` and the CPU time this thread spent in it: what the run would cost
    inline. Wall time would count the wait for a core and for the GIL, which a busy
    gateway inflates, and keep tiny models off the inline path exactly when it pays."""
    cpu = time.thread_time()
    outputs, started, finished = timed_run(model, feeds, deadline)
    return outputs, started, finished, time.thread_time() - cpu


class FusedRun(NamedTuple):
    """A decode and its run in one inference thread, with where the time went."""

    feeds: dict[str, np.ndarray]
    outputs: list[np.ndarray]
    queue_s: float  # waiting for a thread
    preprocess_s: float
    inference_s: float


def _decode_then_run(
    model: ServingModel,
    input_name: str,
    decode: Callable[[], np.ndarray],
    deadline: float | None,
) -> tuple[float, np.ndarray, float, float, tuple[list[np.ndarray], float, float, float]]:
    picked = time.perf_counter()
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExpired("the request's deadline passed while it waited for a thread")
    cpu = time.thread_time()
    batch = decode()
    decode_cpu = time.thread_time() - cpu
    decoded = time.perf_counter()
    return picked, batch, decode_cpu, decoded, cpu_timed_run(model, {input_name: batch}, deadline)


class InferenceRunner:
    """The inference pool, the dynamic batcher in front of it and the inline policy."""

    def __init__(
        self,
        inference_pool: Executor,
        pending: PendingCount,
        batching: BatchingDefaults | None = None,
        inference_workers: int = 1,
        on_batch: Callable[[str, int], None] | None = None,
        inline_threshold_us: int = 0,
    ) -> None:
        self._inference_pool = inference_pool
        self._plans: dict[str, RequestPlan] = {}
        self.batching = batching or BatchingDefaults()
        self.batcher = DynamicBatcher(
            self._run_in_pool, pending, workers=inference_workers, on_batch=on_batch
        )
        self.inline_policy = InlinePolicy(inline_threshold_us)

    def plan(self, model: ServingModel) -> RequestPlan:
        """The per-version facts of ``model`` (rebuilt when another version shows up)."""
        plan = self._plans.get(model.name)
        if plan is None or not plan.serves(model, self.batching):
            plan = self._plans[model.name] = RequestPlan(model, self.batching)
        return plan

    async def _run_in_pool(
        self, model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
    ) -> tuple[list[np.ndarray], float, float]:
        loop = asyncio.get_running_loop()
        outputs, started, finished, cpu = await loop.run_in_executor(
            self._inference_pool, cpu_timed_run, model, feeds, deadline
        )
        self.inline_policy.record(model.name, model.version, "run", cpu, _rows(feeds))
        return outputs, started, finished

    async def decode_and_run(
        self,
        model: ServingModel,
        input_name: str,
        decode: Callable[[], np.ndarray],
        deadline: float | None,
    ) -> FusedRun:
        """``decode()`` and a run of its one row in the same inference thread: one hop,
        no batch (InlinePolicy.fused says when)."""
        loop = asyncio.get_running_loop()
        submitted = time.perf_counter()
        picked, batch, decode_cpu, decoded, run = await loop.run_in_executor(
            self._inference_pool, _decode_then_run, model, input_name, decode, deadline
        )
        outputs, started, finished, run_cpu = run
        self.inline_policy.record(model.name, model.version, "preprocess", decode_cpu)
        self.inline_policy.record(model.name, model.version, "run", run_cpu)
        return FusedRun(
            {input_name: batch}, outputs, picked - submitted, decoded - picked, finished - started
        )

    async def run(
        self, model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
    ) -> RunResult:
        """session.run in the inference pool, through the model's dynamic batcher when
        batching applies; times the wait and the run separately."""
        policy = self.plan(model).policy
        if policy is not None:
            run = await self.batcher.submit(model, feeds, deadline, policy)
            return RunResult(run.outputs, run.queue_s, run.inference_s)
        submitted = time.perf_counter()
        outputs, started, finished = await self._run_in_pool(model, feeds, deadline)
        return RunResult(outputs, started - submitted, finished - started)


def _rows(feeds: dict[str, np.ndarray]) -> int:
    """Rows of a run (the first input's batch axis; 1 without one)."""
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim and first.shape[0] else 1
