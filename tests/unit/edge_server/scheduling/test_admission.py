"""DrainEstimator: a model's drain pace measured from its own completions, with explicit
clock values (``now``) so every interval is known exactly."""

from __future__ import annotations

import time

import pytest

from edge_server.scheduling.admission import (
    DEFAULT_HINT_MS,
    MAX_HINT_MS,
    MIN_HINT_MS,
    MIN_SAMPLES,
    SMOOTHING,
    DrainEstimator,
)


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
