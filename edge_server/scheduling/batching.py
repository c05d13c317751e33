"""Dynamic batching: concurrent requests for one model share a single ``session.run``.

Like Triton's dynamic batcher, requests queue per (model version, input shapes and
dtypes) — requests with different shapes never share a batch — and a batch is cut
when it reaches ``max_batch_size`` rows, when ``max_queue_delay_us`` has passed since
its first request, or at once when no other admitted request of the model is on its
way (waiting could only add latency then). Each response gets exactly its own rows.
A request whose deadline passed while it waited is dropped before inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from edge_server.catalogue.serving import ServingModel
from edge_server.errors import DeadlineExpired

BatchKey = tuple[str, str, tuple[tuple[str, str, tuple[int, ...]], ...]]
Runner = Callable[
    [ServingModel, dict[str, np.ndarray], float | None],
    Awaitable[tuple[list[np.ndarray], float, float]],
]
PendingCount = Callable[[str], int]


@dataclass(frozen=True)
class BatchPolicy:
    max_batch_size: int = 8
    max_queue_delay_us: int = 500
    preferred_batch_sizes: tuple[int, ...] = ()


@dataclass
class _Item:
    feeds: dict[str, np.ndarray]
    rows: int
    deadline: float | None
    enqueued: float
    future: asyncio.Future[tuple[list[np.ndarray], float, float]] = field(repr=False)


@dataclass(frozen=True)
class BatchRun:
    """This request's slice of a batched run."""

    outputs: list[np.ndarray]
    queue_s: float
    inference_s: float
    batch_rows: int


def batch_key(model: ServingModel, feeds: dict[str, np.ndarray]) -> BatchKey:
    signature = tuple(
        (name, array.dtype.str, tuple(array.shape[1:])) for name, array in sorted(feeds.items())
    )
    return (model.name, model.version, signature)


class _Lane:
    """One queue of compatible requests and the task that cuts it into batches."""

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class DynamicBatcher:
    def __init__(
        self,
        run: Runner,
        pending: PendingCount,
        workers: int,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self._run = run
        self._pending = pending
        self._slots = asyncio.Semaphore(workers)
        self._lanes: dict[BatchKey, _Lane] = {}
        self._on_batch = on_batch
        self._running: set[asyncio.Task[None]] = set()
        self._executing: dict[str, int] = {}

    async def submit(
        self,
        model: ServingModel,
        feeds: dict[str, np.ndarray],
        deadline: float | None,
        policy: BatchPolicy,
    ) -> BatchRun:
        rows = int(next(iter(feeds.values())).shape[0])
        if rows >= policy.max_batch_size:  # already a full batch: nothing to gain by queueing
            async with self._slots:
                started = time.perf_counter()
                self._count(model.name, 1)
                try:
                    outputs, run_started, run_finished = await self._run(model, feeds, deadline)
                finally:
                    self._count(model.name, -1)
            return BatchRun(outputs, run_started - started, run_finished - run_started, rows)
        loop = asyncio.get_running_loop()
        item = _Item(feeds, rows, deadline, time.perf_counter(), loop.create_future())
        key = batch_key(model, feeds)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.items.append(item)
        lane.wakeup.set()
        if lane.task is None or lane.task.done():
            lane.task = loop.create_task(self._drain(key, lane, model, policy))
        outputs, run_started, run_finished = await item.future
        return BatchRun(outputs, run_started - item.enqueued, run_finished - run_started, item.rows)

    async def _drain(
        self, key: BatchKey, lane: _Lane, model: ServingModel, policy: BatchPolicy
    ) -> None:
        """Cut batches while the lane has requests; each runs as soon as a worker is free,
        so two workers can run two batches of the same model at once."""
        try:
            while lane.items:
                await self._slots.acquire()
                try:
                    batch = await self._collect(lane, model, policy)
                except BaseException:
                    self._slots.release()
                    raise
                if not batch:
                    self._slots.release()
                    continue
                task = asyncio.get_running_loop().create_task(self._execute(model, batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        finally:
            if not lane.items and self._lanes.get(key) is lane:
                del self._lanes[key]

    def _count(self, model: str, delta: int) -> None:
        self._executing[model] = self._executing.get(model, 0) + delta

    async def _collect(self, lane: _Lane, model: ServingModel, policy: BatchPolicy) -> list[_Item]:
        """Take up to max_batch_size rows, waiting up to the queue delay while more are due."""
        cut_at = lane.items[0].enqueued + policy.max_queue_delay_us / 1e6
        while True:
            rows = sum(item.rows for item in lane.items)
            if rows >= policy.max_batch_size or rows in policy.preferred_batch_sizes:
                break
            # Requests admitted for this model that are neither queued nor running are on
            # their way (being decoded); with none, waiting would only add latency.
            upstream = self._pending(model.name) - self._executing.get(model.name, 0)
            if upstream <= len(lane.items):
                break
            remaining = cut_at - time.perf_counter()
            if remaining <= 0:
                break
            lane.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wakeup.wait(), remaining)
        batch: list[_Item] = []
        rows = 0
        while lane.items and rows + lane.items[0].rows <= policy.max_batch_size:
            item = lane.items.pop(0)
            rows += item.rows
            batch.append(item)
        if not batch and lane.items:  # a single request larger than the limit
            batch.append(lane.items.pop(0))
        now = time.monotonic()
        live = []
        for item in batch:
            if item.future.done():  # cancelled: the caller gave up (deadline, disconnect)
                continue
            if item.deadline is not None and now >= item.deadline:
                item.future.set_exception(
                    DeadlineExpired(
                        "the request's deadline passed while it waited in the batch queue"
                    )
                )
            else:
                live.append(item)
        return live

    async def _execute(self, model: ServingModel, batch: list[_Item]) -> None:
        try:
            await self._execute_batch(model, batch)
        finally:
            self._slots.release()

    async def _execute_batch(self, model: ServingModel, batch: list[_Item]) -> None:
        if len(batch) == 1:
            feeds = batch[0].feeds
        else:
            names = batch[0].feeds.keys()
            feeds = {name: np.concatenate([item.feeds[name] for item in batch]) for name in names}
        if self._on_batch is not None:
            self._on_batch(model.name, sum(item.rows for item in batch))
        self._count(model.name, len(batch))
        try:
            outputs, started, finished = await self._run(model, feeds, None)
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self._count(model.name, -len(batch))
        total = sum(item.rows for item in batch)
        offset = 0
        for item in batch:
            rows = slice(offset, offset + item.rows)
            # Outputs without a batch axis (rare) are shared by every request as they are.
            sliced = [out[rows] if out.ndim and out.shape[0] == total else out for out in outputs]
            offset += item.rows
            if not item.future.done():
                item.future.set_result((sliced, started, finished))
