"""The Feedback page's data from aggregates stored through the real feedback store on
SQLite: classes over time, the histogram, weighted latency percentiles, error rate, two
versions side by side, hard examples only under a policy that allows them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.feedback_view import (
    FeedbackQuery,
    _weighted_percentile,
    feedback_view,
    hard_example,
)
from cloud_orchestrator.errors import InvalidRequest, NotFound
from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, HardExampleIn
from cloud_orchestrator.storage.models import Model, ModelVersion

NOW = time.time()


def aggregate(version: str, start: float, classes: list[Any], p50: int, p99: int, n: int,
              errors: int = 0) -> AggregateIn:  # fmt: skip
    histogram = [0] * 10
    histogram[9] = n
    return AggregateIn("gray", version, start, 60, classes, histogram, n, errors, n,
                       n * p50, p99, p50, p99)  # fmt: skip


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Orchestrator]:
    orch = Orchestrator(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts")
    with orch.db.session() as session:
        session.add(Model(id=1, name="gray", created_at=NOW))
        for version, policy in (("1", {}), ("2", {"feedback": {"policy": "hard_examples"}})):
            session.add(
                ModelVersion(model_id=1, version=version, sha256=version * 64, size_bytes=1,
                             signature="", key_id="k", published_at=NOW, manifest=policy)
            )  # fmt: skip
    example = HardExampleIn(
        "gray", "2", 3, "three", 0.31, "low_confidence", b"PNG", "image/png", NOW
    )
    private = HardExampleIn("gray", "1", 3, "three", 0.2, "low_confidence", b"X", "image/png", NOW)
    orch.feedback.store(
        BatchIn("b1", "gw-1", NOW, [
            aggregate("2", NOW - 600, [[0, "zero", 8], [3, "three", 2]], 1000, 5000, 10),
            aggregate("2", NOW - 60, [[0, "zero", 30]], 3000, 9000, 30, errors=10),
            aggregate("1", NOW - 60, [[1, "one", 5]], 500, 700, 5),
            aggregate("2", NOW - 7200, [[0, "zero", 99]], 1, 1, 99),  # outside the range
        ], [example, private])
    )  # fmt: skip
    try:
        yield orch
    finally:
        orch.close()


def test_two_versions_side_by_side(orch: Orchestrator) -> None:
    view = feedback_view(orch.db, orch.registry, FeedbackQuery("gray", (), NOW - 3600, NOW + 60))
    assert [v["version"] for v in view["versions"]] == ["2", "1"]  # the newest two
    two, one = view["versions"]
    assert two["predictions"] == 40 and two["errors"] == 10 and two["error_rate"] == 10 / 50
    assert sum(two["classes"]["zero"]) == 38 and sum(two["classes"]["three"]) == 2
    assert len(two["classes"]["zero"]) == view["points"] == 60
    assert two["confidence_histogram"][9] == 40
    assert two["latency_p50_us"] == 3000  # 30 of the 40 timed requests are in that bucket
    assert two["latency_p99_us"] == 9000
    assert two["hard_examples_allowed"] and [x["label"] for x in two["hard_examples"]] == ["three"]
    assert not one["hard_examples_allowed"] and one["hard_examples"] == []
    # 60 points over 3,660 s: the bucket of NOW - 60 falls in point 58.
    assert [i for i, n in enumerate(one["classes"]["one"]) if n] == [58]
    assert one["classes"]["one"][58] == 5


def test_hard_example_images_follow_the_policy(orch: Orchestrator) -> None:
    view = feedback_view(orch.db, orch.registry, FeedbackQuery("gray", ("2",), NOW - 60, NOW + 60))
    example_id = view["versions"][0]["hard_examples"][0]["id"]
    assert hard_example(orch.db, orch.registry, example_id) == (b"PNG", "image/png")
    with pytest.raises(NotFound, match="does not share"):
        hard_example(orch.db, orch.registry, example_id + 1)  # version 1's: no policy
    with pytest.raises(NotFound):
        hard_example(orch.db, orch.registry, 999)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (FeedbackQuery("gray", (), NOW, NOW - 1), InvalidRequest),
        (FeedbackQuery("gray", (), 0, NOW), InvalidRequest),
        (FeedbackQuery("gray", ("1", "2", "3"), NOW - 60, NOW), InvalidRequest),
        (FeedbackQuery("gray", ("9",), NOW - 60, NOW), NotFound),
        (FeedbackQuery("nope", (), NOW - 60, NOW), NotFound),
    ],
)
def test_bad_queries(orch: Orchestrator, query: FeedbackQuery, error: type[Exception]) -> None:
    with pytest.raises(error):
        feedback_view(orch.db, orch.registry, query)


def test_weighted_percentile() -> None:
    assert _weighted_percentile([], 0.5) == 0
    assert _weighted_percentile([(10, 1), (20, 1), (30, 98)], 0.5) == 30
    assert _weighted_percentile([(10, 60), (20, 40)], 0.5) == 10
    assert _weighted_percentile([(10, 98), (20, 2)], 0.99) == 20
