"""DrainEstimator: a model's drain pace measured from its own completions, with explicit
clock values (``now``) so every interval is known exactly; AdmissionControl's memory
budget: bytes reserved by every call in flight, refused at once when they do not fit."""

from __future__ import annotations

import asyncio
import functools
import time

import pytest

from edge_server.catalogue.on_disk import DiskCatalogue
from edge_server.catalogue.serving import ServingCatalogue
from edge_server.errors import InvalidInput, Overloaded
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.scheduling.admission import (
    DEFAULT_HINT_MS,
    MAX_HINT_MS,
    MIN_HINT_MS,
    MIN_SAMPLES,
    SMOOTHING,
    AdmissionControl,
    DrainEstimator,
)
from tests.support.model_factory import build_model_root


def busy(
    estimator: DrainEstimator, model: str, interval: float, count: int, start: float = 0.0
) -> float:
    """``count`` completions ``interval`` apart of requests all waiting since ``start``."""
    now = start
    for _ in range(count):
        now += interval
        estimator.completed(model, received=start, now=now)
    return now


def test_no_estimate_before_any_completion() -> None:
    estimator = DrainEstimator()
    assert estimator.wait_s("m", 10) is None
    assert estimator.retry_hint_ms("m", 10) == DEFAULT_HINT_MS


def test_no_estimate_until_the_model_has_shown_its_pace() -> None:
    estimator = DrainEstimator()
    busy(estimator, "m", 0.01, MIN_SAMPLES - 1)
    assert estimator.wait_s("m", 10) is None
    assert estimator.retry_hint_ms("m", 10) == DEFAULT_HINT_MS
    busy(estimator, "m", 0.01, 1, start=10.0)
    assert estimator.wait_s("m", 10) == pytest.approx(0.1)


def test_the_wait_is_the_measured_interval_times_the_requests_ahead() -> None:
    estimator = DrainEstimator()
    busy(estimator, "m", 0.004, MIN_SAMPLES)
    assert estimator.wait_s("m", 0) == 0
    assert estimator.wait_s("m", 1) == pytest.approx(0.004)
    assert estimator.wait_s("m", 25) == pytest.approx(0.1)


def test_idle_time_between_requests_does_not_count_as_drain_time() -> None:
    estimator = DrainEstimator()
    # One request a second, each served in 3 ms: the model drains at 3 ms a request,
    # not at one a second.
    for i in range(MIN_SAMPLES):
        estimator.completed("m", received=float(i), now=i + 0.003)
    assert estimator.wait_s("m", 10) == pytest.approx(0.03)


def test_the_estimate_follows_a_change_of_pace_gradually() -> None:
    estimator = DrainEstimator()
    end = busy(estimator, "m", 0.01, MIN_SAMPLES)
    estimator.completed("m", received=0.0, now=end + 0.11)  # one 110 ms interval
    expected = 0.01 + SMOOTHING * (0.11 - 0.01)
    assert estimator.wait_s("m", 1) == pytest.approx(expected)
    busy(estimator, "m", 0.11, 200, start=end + 0.11)
    assert estimator.wait_s("m", 1) == pytest.approx(0.11, rel=1e-3)


def test_the_retry_hint_is_the_time_for_half_the_requests_ahead() -> None:
    estimator = DrainEstimator()
    busy(estimator, "m", 0.01, MIN_SAMPLES)
    assert estimator.retry_hint_ms("m", 20) == 100  # 20 x 10 ms = 200 ms; half of it
    assert estimator.retry_hint_ms("m", 7) == 35


def test_the_retry_hint_is_bounded() -> None:
    estimator = DrainEstimator()
    busy(estimator, "m", 0.01, MIN_SAMPLES)
    assert estimator.retry_hint_ms("m", 0) == MIN_HINT_MS
    assert estimator.retry_hint_ms("m", 1) == MIN_HINT_MS  # 5 ms: below the floor
    assert estimator.retry_hint_ms("m", 100_000) == MAX_HINT_MS
    assert MIN_HINT_MS <= DEFAULT_HINT_MS <= MAX_HINT_MS


def test_models_are_measured_independently() -> None:
    estimator = DrainEstimator()
    busy(estimator, "fast", 0.001, MIN_SAMPLES)
    assert estimator.wait_s("slow", 1) is None
    # Interleaved completions: the other model's completions are not "previous" ones.
    for i in range(MIN_SAMPLES):
        estimator.completed("slow", received=0.0, now=(i + 1) * 0.05)
        estimator.completed("fast", received=(i + 1) * 0.05, now=(i + 1) * 0.05 + 0.001)
    assert estimator.wait_s("fast", 10) == pytest.approx(0.01)
    assert estimator.wait_s("slow", 10) == pytest.approx(0.5)
    assert estimator.retry_hint_ms("fast", 10) == MIN_HINT_MS
    assert estimator.retry_hint_ms("slow", 10) == 250


def test_without_now_the_performance_counter_is_used() -> None:
    estimator = DrainEstimator()
    for _ in range(MIN_SAMPLES):
        estimator.completed("m", received=time.perf_counter())
    wait = estimator.wait_s("m", 1)
    assert wait is not None
    assert 0 <= wait < 0.1


# -- the memory budget: bytes reserved by every call in flight, all models together --


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ServingCatalogue:
    """A real catalogue with two real ONNX models loaded (gray, tensoronly)."""
    root = build_model_root(tmp_path_factory.mktemp("models"))
    catalogue = ServingCatalogue(
        DiskCatalogue(root),
        functools.partial(LoadedSession, config=SessionConfig(intra_op_threads=1)),
    )
    catalogue.discover()
    asyncio.run(catalogue.load_all())
    return catalogue


def budgeted(
    models: ServingCatalogue, budget: int, refused: list[str] | None = None
) -> tuple[AdmissionControl, list[int]]:
    drained: list[int] = []
    admission = AdmissionControl(
        models,
        max_queue_size=8,
        memory_budget_bytes=budget,
        on_memory_refused=None if refused is None else refused.append,
        on_drained=drained.append,
    )
    return admission, drained


def test_reserved_bytes_are_counted_across_models_and_given_back(
    models: ServingCatalogue,
) -> None:
    admission, drained = budgeted(models, 1000)
    gray = admission.take("gray", "", None)
    other = admission.take("tensoronly", "", None)
    first = admission.reserve(gray, 600)
    second = admission.reserve(other, 400)
    assert (first.nbytes, second.nbytes, admission.bytes_in_use) == (600, 400, 1000)
    admission.release_bytes(first)
    assert admission.bytes_in_use == 400 and drained == []
    admission.release_bytes(second)
    assert admission.bytes_in_use == 0
    assert drained == [1000]  # the peak since the last time nothing was reserved


def test_a_call_that_does_not_fit_is_refused_at_once_with_a_retry_hint(
    models: ServingCatalogue,
) -> None:
    refused: list[str] = []
    admission, _ = budgeted(models, 1000, refused)
    model = admission.take("gray", "", None)
    admission.reserve(model, 700)
    with pytest.raises(Overloaded) as error:
        admission.reserve(model, 301)
    assert error.value.retry_after_ms == DEFAULT_HINT_MS  # pace not measured yet
    assert "memory budget of 0.0 MiB" in str(error.value)
    assert admission.bytes_in_use == 700 and refused == ["gray"]
    assert admission.reserve(model, 300).nbytes == 300  # exactly full still fits


def test_a_call_larger_than_the_whole_budget_is_invalid(models: ServingCatalogue) -> None:
    refused: list[str] = []
    admission, _ = budgeted(models, 64 * 1024 * 1024, refused)
    model = admission.take("gray", "", None)
    with pytest.raises(InvalidInput) as error:
        admission.reserve(model, 100 * 1024 * 1024)
    assert str(error.value) == (
        "this call needs about 100.0 MiB of memory (payload, decoded image, model input "
        "and output), more than the gateway's whole memory budget of 64.0 MiB "
        "(--memory-budget-bytes); send a smaller input"
    )
    assert admission.bytes_in_use == 0 and refused == ["gray"]


def test_the_slot_gives_back_bytes_and_slot_when_the_block_raises(
    models: ServingCatalogue,
) -> None:
    admission, drained = budgeted(models, 1000)
    with pytest.raises(RuntimeError), admission.slot("gray", footprint=lambda _: 900):
        assert admission.bytes_in_use == 900
        assert admission.queue_depth("gray") == 1
        raise RuntimeError("decode failed")
    assert admission.bytes_in_use == 0 and admission.queue_depth("gray") == 0
    assert drained == [900]


def test_a_refused_reservation_gives_the_slot_back_without_a_completion(
    models: ServingCatalogue,
) -> None:
    admission, _ = budgeted(models, 1000)
    with admission.slot("gray", footprint=lambda _: 1000):
        with pytest.raises(Overloaded):
            admission.take_with_bytes("gray", "", None, lambda _: 1)
        assert admission.queue_depth("gray") == 1  # only the call that fits
    assert admission.queue_depth("gray") == 0
    assert admission.drain.wait_s("gray", 1) is None  # one completion, not two


def test_no_budget_reserves_nothing(models: ServingCatalogue) -> None:
    admission, drained = budgeted(models, 0)
    model = admission.take("gray", "", None)
    held = admission.reserve(model, 10**12)
    assert held.nbytes == 0
    admission.release_bytes(held)
    assert admission.bytes_in_use == 0 and drained == []
