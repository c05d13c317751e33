"""StatisticsBook: per-version request accounting and the recent-outcome window the
rollback watch reads (fault counts, tail latency)."""

from __future__ import annotations

import threading
import time

import pytest

from edge_server.inference.statistics import (
    RECENT_OUTCOMES,
    Duration,
    StatisticsBook,
    VersionStatistics,
    WindowSummary,
)


def success(book: StatisticsBook, version: str = "1", rows: int = 1, total_s: float = 0.01) -> None:
    book.record_success(
        "m",
        version,
        rows,
        total_s,
        preprocess_s=0.001,
        queue_s=0.002,
        infer_s=0.003,
        postprocess_s=0.004,
    )


def test_successes_are_counted_per_version() -> None:
    book = StatisticsBook()
    before = int(time.time() * 1000)
    book.record_success("m", "1", 2, 0.010, 0.001, 0.002, 0.003, 0.004)
    book.record_success("m", "1", 3, 0.020, 0.002, 0.004, 0.006, 0.008)
    after = int(time.time() * 1000)
    (stats,) = book.snapshot().values()
    assert stats.inference_count == 5  # rows
    assert stats.execution_count == 2  # runs
    assert before <= stats.last_inference_ms <= after
    assert stats.success == Duration(2, 30_000_000)
    assert stats.compute_input == Duration(2, 3_000_000)
    assert stats.queue == Duration(2, 6_000_000)
    assert stats.compute_infer == Duration(2, 9_000_000)
    assert stats.compute_output == Duration(2, 12_000_000)
    assert stats.fail == Duration()


def test_failures_are_counted_apart_from_successes() -> None:
    book = StatisticsBook()
    success(book)
    book.record_failure("m", "1", 0.5)
    book.record_failure("m", "1", 0.25, model_fault=True)
    stats = book.snapshot()[("m", "1")]
    assert stats.fail == Duration(2, 750_000_000)
    assert stats.success.count == 1
    assert stats.inference_count == 1
    assert stats.execution_count == 1


def test_a_failure_alone_creates_the_version_entry() -> None:
    book = StatisticsBook()
    book.record_failure("m", "9", 0.1)
    assert book.snapshot() == {("m", "9"): VersionStatistics(fail=Duration(1, 100_000_000))}


def test_a_negative_duration_counts_as_zero() -> None:
    book = StatisticsBook()
    book.record_failure("m", "1", -0.5)
    assert book.snapshot()[("m", "1")].fail == Duration(1, 0)


def test_versions_and_models_are_kept_apart_and_snapshots_filter_them() -> None:
    book = StatisticsBook()
    success(book, "1", rows=1)
    success(book, "2", rows=4)
    book.record_success("other", "1", 7, 0.01, 0, 0, 0, 0)
    assert set(book.snapshot()) == {("m", "1"), ("m", "2"), ("other", "1")}
    assert set(book.snapshot(model="m")) == {("m", "1"), ("m", "2")}
    assert set(book.snapshot(version="1")) == {("m", "1"), ("other", "1")}
    only = book.snapshot("m", "2")
    assert set(only) == {("m", "2")}
    assert only[("m", "2")].inference_count == 4
    assert book.snapshot("other", "1")[("other", "1")].inference_count == 7
    assert book.snapshot("absent") == {}


def test_a_snapshot_is_a_copy() -> None:
    book = StatisticsBook()
    success(book)
    taken = book.snapshot()[("m", "1")]
    taken.inference_count = 1000
    taken.success.count = 1000
    stats = book.snapshot()[("m", "1")]
    assert (stats.inference_count, stats.success.count) == (1, 1)
    success(book)
    assert taken.execution_count == 1


def test_the_window_counts_model_faults_but_not_bad_input() -> None:
    book = StatisticsBook()
    start = time.monotonic()
    for _ in range(6):
        success(book)
    book.record_failure("m", "1", 0.5, model_fault=True)
    book.record_failure("m", "1", 0.5, model_fault=True)
    book.record_failure("m", "1", 0.5)  # the caller's fault: not the version's
    window = book.window("m", "1", since=start)
    assert (window.count, window.faults) == (8, 2)
    assert window.fault_rate == pytest.approx(0.25)
    assert window.p99_s == pytest.approx(0.01)  # failed requests' latencies are left out
    assert book.window("m", "2", since=start) == WindowSummary(0, 0, 0.0)
    assert WindowSummary(0, 0, 0.0).fault_rate == 0.0


def test_the_window_is_bounded_by_since_and_until() -> None:
    book = StatisticsBook()
    success(book, total_s=0.1)
    time.sleep(0.002)
    middle = time.monotonic()
    time.sleep(0.002)
    success(book, total_s=0.2)
    book.record_failure("m", "1", 0.3, model_fault=True)
    assert book.window("m", "1", since=0.0, until=middle) == WindowSummary(1, 0, 0.1)
    assert book.window("m", "1", since=middle) == WindowSummary(2, 1, 0.2)
    assert book.window("m", "1", since=time.monotonic() + 1).count == 0


def test_below_100_requests_the_tail_is_the_p90() -> None:
    book = StatisticsBook()
    for ms in range(50, 0, -1):  # 1..50 ms, recorded out of order
        success(book, total_s=ms / 1000)
    assert book.window("m", "1", since=0.0).p99_s == pytest.approx(0.046)


def test_from_100_requests_the_tail_is_the_p99() -> None:
    book = StatisticsBook()
    for ms in range(1, 201):  # 1..200 ms
        success(book, total_s=ms / 1000)
    assert book.window("m", "1", since=0.0).p99_s == pytest.approx(0.199)


def test_the_window_remembers_a_bounded_number_of_recent_outcomes() -> None:
    book = StatisticsBook()
    book.record_failure("m", "1", 1.0, model_fault=True)  # the oldest: pushed out
    for _ in range(RECENT_OUTCOMES):
        success(book)
    window = book.window("m", "1", since=0.0)
    assert (window.count, window.faults) == (RECENT_OUTCOMES, 0)
    assert book.snapshot()[("m", "1")].success.count == RECENT_OUTCOMES  # counters are not


def test_recording_from_several_threads_loses_nothing() -> None:
    book = StatisticsBook()

    def record() -> None:
        for _ in range(500):
            success(book, rows=2)
            book.record_failure("m", "1", 0.001)

    threads = [threading.Thread(target=record) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = book.snapshot()[("m", "1")]
    assert (stats.inference_count, stats.execution_count, stats.fail.count) == (4000, 2000, 2000)
