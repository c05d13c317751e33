"""Dynamic batching: which requests share a run, how a batch is cut, and that each caller
gets back exactly its own rows (every request's rows hold values no other request has)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time

import numpy as np
import pytest

from edge_server.catalogue.on_disk import VersionOnDisk
from edge_server.catalogue.serving import ServingModel, build_serving_model
from edge_server.errors import DeadlineExpired
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.scheduling.batching import BatchPolicy, BatchRun, DynamicBatcher, batch_key
from tests.support.model_factory import linear_classifier


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    """A real 3-class linear classifier on [N, 1, 2, 2] float32, loaded and warmed."""
    path = linear_classifier(
        tmp_path_factory.mktemp("models") / "m" / "1" / "model.onnx", size=2, classes=3
    )
    factory = functools.partial(LoadedSession, config=SessionConfig())
    return build_serving_model(VersionOnDisk("m", "1", path.parent), factory)


def rows(*values: float, dtype: type = np.float32, side: int = 2) -> np.ndarray:
    """One [1, side, side] row per value, filled with that value."""
    return np.stack([np.full((1, side, side), value, dtype) for value in values])


class Runs:
    """The runner the batcher calls: records each run's feeds and echoes its input back,
    then (with ``infer``) the real model's logits, then two outputs without a batch axis:
    the batch's row count (a scalar) and a 7-vector (no test batch has 7 rows)."""

    def __init__(self, infer: bool = False) -> None:
        self.infer = infer
        self.feeds: list[dict[str, np.ndarray]] = []
        self.fail_with: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.active = 0
        self.most_active = 0

    async def __call__(
        self, model: ServingModel, feeds: dict[str, np.ndarray], deadline: float | None
    ) -> tuple[list[np.ndarray], float, float]:
        started = time.perf_counter()
        self.feeds.append({name: array.copy() for name, array in feeds.items()})
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if self.fail_with is not None:
                raise self.fail_with
            outputs = [feeds["input"].copy()]
            if self.infer:
                outputs += model.session.run(feeds)
            outputs.append(np.array(len(feeds["input"])))
            outputs.append(np.arange(7))  # 7 values whatever the batch: no batch axis
        finally:
            self.active -= 1
        return outputs, started, time.perf_counter()

    @property
    def sizes(self) -> list[int]:
        return [len(feeds["input"]) for feeds in self.feeds]


class Admitted:
    """The pending-count callable: requests admitted per model and not finished yet
    (executing ones included), as the predictor counts them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, model: str) -> int:
        return self.counts.get(model, 0)

    async def submit(
        self,
        batcher: DynamicBatcher,
        model: ServingModel,
        array: np.ndarray,
        policy: BatchPolicy,
        deadline: float | None = None,
    ) -> BatchRun:
        self.counts[model.name] = self(model.name) + 1
        try:
            return await batcher.submit(model, {"input": array}, deadline, policy)
        finally:
            self.counts[model.name] -= 1


def test_batch_key_ignores_the_batch_axis_and_separates_shapes_dtypes_and_versions(
    model: ServingModel,
) -> None:
    one = {"input": rows(1.0)}
    key = batch_key(model, one)
    assert batch_key(model, {"input": rows(1.0, 2.0, 3.0)}) == key
    assert batch_key(model, {"input": rows(1.0, dtype=np.float64)}) != key
    assert batch_key(model, {"input": rows(1.0, side=3)}) != key
    assert batch_key(dataclasses.replace(model, version="2"), one) != key
    assert batch_key(dataclasses.replace(model, name="other"), one) != key
    two_inputs = {"b": np.zeros((1, 4), np.int64), "a": np.zeros((1, 2), np.float32)}
    assert batch_key(model, two_inputs) == batch_key(model, dict(reversed(two_inputs.items())))


async def test_concurrent_requests_share_one_run_and_each_gets_its_own_rows(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(infer=True), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=200_000)
    requests = [rows(1.0), rows(2.0, 3.0), rows(4.0), rows(5.0)]
    results = await asyncio.gather(*(admitted.submit(batcher, model, r, policy) for r in requests))
    assert runs.sizes == [5]  # one run for all of them
    np.testing.assert_array_equal(runs.feeds[0]["input"], np.concatenate(requests))
    for request, result in zip(requests, results, strict=True):
        echo, logits, batch_rows, vector = result.outputs
        np.testing.assert_array_equal(echo, request)
        alone = model.session.run({"input": request})[0]
        np.testing.assert_allclose(logits, alone, rtol=1e-5, atol=1e-6)
        assert batch_rows == 5  # outputs without a batch axis are shared as they are
        np.testing.assert_array_equal(vector, np.arange(7))
        assert result.queue_s >= 0
        assert result.inference_s >= 0


async def test_different_shapes_or_dtypes_never_share_a_batch(model: ServingModel) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=2)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=20_000)
    requests = [
        rows(1.0),
        rows(2.0, dtype=np.float64),
        rows(3.0, side=3),
        rows(4.0),
        rows(5.0, dtype=np.float64),
    ]
    results = await asyncio.gather(*(admitted.submit(batcher, model, r, policy) for r in requests))
    assert sorted(runs.sizes) == [1, 2, 2]
    for feeds in runs.feeds:
        batch = feeds["input"]
        assert len({(row.dtype.str, row.shape) for row in batch}) == 1
    groups = {(f["input"].dtype.str, f["input"].shape[1:]): f["input"] for f in runs.feeds}
    np.testing.assert_array_equal(
        groups[("<f4", (1, 2, 2))], np.concatenate([rows(1.0), rows(4.0)])
    )
    np.testing.assert_array_equal(
        groups[("<f8", (1, 2, 2))],
        np.concatenate([rows(2.0, dtype=np.float64), rows(5.0, dtype=np.float64)]),
    )
    for request, result in zip(requests, results, strict=True):
        assert result.outputs[0].dtype == request.dtype
        np.testing.assert_array_equal(result.outputs[0], request)


async def test_other_models_never_share_a_batch(model: ServingModel) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=2)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=50_000)
    other = dataclasses.replace(model, name="other")
    first, second = await asyncio.gather(
        admitted.submit(batcher, model, rows(1.0), policy),
        admitted.submit(batcher, other, rows(2.0), policy),
    )
    assert runs.sizes == [1, 1]
    np.testing.assert_array_equal(first.outputs[0], rows(1.0))
    np.testing.assert_array_equal(second.outputs[0], rows(2.0))


async def test_a_batch_is_cut_at_max_batch_size(model: ServingModel) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=4, max_queue_delay_us=20_000)
    requests = [rows(float(i)) for i in range(6)]
    results = await asyncio.gather(*(admitted.submit(batcher, model, r, policy) for r in requests))
    assert runs.sizes == [4, 2]
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result.outputs[0], request)


async def test_requests_that_would_overflow_the_batch_wait_for_the_next(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=4, max_queue_delay_us=20_000)
    requests = [rows(1.0, 2.0, 3.0), rows(4.0, 5.0), rows(6.0, 7.0)]
    results = await asyncio.gather(*(admitted.submit(batcher, model, r, policy) for r in requests))
    assert runs.sizes == [3, 4]  # 3 + 2 would be 5 rows: the 2-row requests go together
    for request, result in zip(requests, results, strict=True):
        np.testing.assert_array_equal(result.outputs[0], request)


async def test_a_request_of_max_batch_size_rows_runs_alone_at_once(model: ServingModel) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=2, max_queue_delay_us=1_000_000)
    admitted.counts[model.name] = 5  # others are on their way: it still does not wait
    started = time.perf_counter()
    result = await batcher.submit(model, {"input": rows(1.0, 2.0, 3.0)}, None, policy)
    assert time.perf_counter() - started < 0.5
    assert runs.sizes == [3]
    np.testing.assert_array_equal(result.outputs[0], rows(1.0, 2.0, 3.0))


async def test_a_lone_request_is_not_delayed_when_nothing_else_is_pending(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=1_000_000)
    started = time.perf_counter()
    result = await admitted.submit(batcher, model, rows(1.0), policy)
    assert time.perf_counter() - started < 0.5  # far below the 1 s queue delay
    assert result.queue_s < 0.5
    assert runs.sizes == [1]


async def early_and_late(
    admitted: Admitted, batcher: DynamicBatcher, model: ServingModel, policy: BatchPolicy
) -> tuple[BatchRun, BatchRun]:
    """A request (rows of 1.0) and a second one (2.0) admitted with it that reaches the
    batcher 20 ms later (it was being decoded)."""
    admitted.counts[model.name] = admitted(model.name) + 1

    async def late() -> BatchRun:
        await asyncio.sleep(0.02)
        admitted.counts[model.name] -= 1  # it leaves decoding and enters the batcher
        return await admitted.submit(batcher, model, rows(2.0), policy)

    first, second = await asyncio.gather(admitted.submit(batcher, model, rows(1.0), policy), late())
    return first, second


async def test_a_batch_waits_for_a_pending_request_up_to_the_queue_delay(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=1_000_000)
    started = time.perf_counter()
    first, second = await early_and_late(admitted, batcher, model, policy)
    assert time.perf_counter() - started < 0.5  # cut when it arrived, not after 1 s
    assert runs.sizes == [2]
    np.testing.assert_array_equal(first.outputs[0], rows(1.0))
    np.testing.assert_array_equal(second.outputs[0], rows(2.0))
    assert first.queue_s >= 0.015


@pytest.mark.parametrize(
    "policy",
    [
        # Full: more requests are on their way, but the batch cannot take them.
        BatchPolicy(max_batch_size=2, max_queue_delay_us=1_000_000),
        # Not full, but 2 rows is a preferred size: cut there rather than wait.
        BatchPolicy(max_batch_size=8, max_queue_delay_us=1_000_000, preferred_batch_sizes=(2,)),
    ],
    ids=["full", "preferred-size"],
)
async def test_a_batch_is_cut_without_waiting_for_announced_requests(
    model: ServingModel, policy: BatchPolicy
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    admitted.counts[model.name] = 3  # a third request is announced and never comes
    started = time.perf_counter()
    await asyncio.gather(
        admitted.submit(batcher, model, rows(1.0), policy),
        admitted.submit(batcher, model, rows(2.0), policy),
    )
    assert time.perf_counter() - started < 0.5
    assert runs.sizes == [2]


async def test_a_batch_is_cut_after_the_queue_delay_when_the_pending_request_never_comes(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=30_000)
    admitted.counts[model.name] = 1  # announced, never submitted
    result = await admitted.submit(batcher, model, rows(1.0), policy)
    assert runs.sizes == [1]
    assert 0.025 <= result.queue_s < 0.5


async def test_a_request_whose_deadline_passed_while_waiting_is_dropped_before_running(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=60_000)
    admitted.counts[model.name] = 1  # a third request is announced: the batch waits 60 ms
    expiring, patient = await asyncio.gather(
        admitted.submit(batcher, model, rows(1.0), policy, deadline=time.monotonic() + 0.02),
        admitted.submit(batcher, model, rows(2.0), policy),
        return_exceptions=True,
    )
    assert isinstance(expiring, DeadlineExpired)
    assert "deadline passed while it waited" in str(expiring)
    assert isinstance(patient, BatchRun)
    np.testing.assert_array_equal(patient.outputs[0], rows(2.0))
    assert runs.sizes == [1]  # the expired request's rows never reached the runner
    np.testing.assert_array_equal(runs.feeds[0]["input"], rows(2.0))


async def test_a_runner_failure_reaches_every_caller_of_the_batch_and_the_batcher_recovers(
    model: ServingModel,
) -> None:
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(runs, admitted, workers=1)
    policy = BatchPolicy(max_batch_size=8, max_queue_delay_us=20_000)
    runs.fail_with = RuntimeError("session exploded")
    async with asyncio.timeout(5):  # a caller left without an answer would hang
        failures = await asyncio.gather(
            *(admitted.submit(batcher, model, rows(float(i)), policy) for i in range(3)),
            return_exceptions=True,
        )
    assert runs.sizes == [3]
    assert all(failure is runs.fail_with for failure in failures)
    runs.fail_with = None
    results = await asyncio.gather(
        *(admitted.submit(batcher, model, rows(float(i)), policy) for i in (7, 8))
    )
    assert runs.sizes == [3, 2]
    for value, result in zip((7, 8), results, strict=True):
        np.testing.assert_array_equal(result.outputs[0], rows(float(value)))
    # The failed batch is not counted as running any more: a lone request is not held
    # back, and a request on its way is still waited for.
    slow = BatchPolicy(max_batch_size=8, max_queue_delay_us=1_000_000)
    started = time.perf_counter()
    await admitted.submit(batcher, model, rows(9.0), slow)
    await early_and_late(admitted, batcher, model, slow)
    assert time.perf_counter() - started < 0.5
    assert runs.sizes == [3, 2, 1, 2]


async def test_two_workers_run_two_batches_at_once_and_one_worker_runs_one(
    model: ServingModel,
) -> None:
    for workers in (1, 2):
        runs, admitted = Runs(), Admitted()
        runs.gate = asyncio.Event()
        batcher = DynamicBatcher(runs, admitted, workers=workers)
        policy = BatchPolicy(max_batch_size=2, max_queue_delay_us=20_000)
        pending = [
            asyncio.ensure_future(admitted.submit(batcher, model, rows(float(i)), policy))
            for i in range(4)
        ]
        for _ in range(50):
            await asyncio.sleep(0.001)
            if runs.active == workers:
                break
        await asyncio.sleep(0.005)
        assert runs.active == workers
        runs.gate.set()
        results = await asyncio.gather(*pending)
        assert runs.sizes == [2, 2]
        assert runs.most_active == workers
        for i, result in enumerate(results):
            np.testing.assert_array_equal(result.outputs[0], rows(float(i)))


async def test_on_batch_sees_the_model_and_the_rows_of_every_batched_run(
    model: ServingModel,
) -> None:
    seen: list[tuple[str, int]] = []
    runs, admitted = Runs(), Admitted()
    batcher = DynamicBatcher(
        runs, admitted, workers=1, on_batch=lambda name, size: seen.append((name, size))
    )
    policy = BatchPolicy(max_batch_size=4, max_queue_delay_us=20_000)
    await asyncio.gather(
        admitted.submit(batcher, model, rows(1.0, 2.0), policy),
        admitted.submit(batcher, model, rows(3.0), policy),
        admitted.submit(batcher, model, rows(4.0, 5.0), policy),
    )
    assert seen == [("m", 3), ("m", 2)]
    assert runs.sizes == [3, 2]
