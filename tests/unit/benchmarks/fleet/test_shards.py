"""Merging the simulator shards' answers gives the answer one process would have given."""

from __future__ import annotations

import random

import benchmarks.fleet.simulator as simulator
from benchmarks.fleet.shards import merge_answers
from benchmarks.fleet.simulator import percentiles


def _with_values(values: list[float]) -> dict[str, object]:
    simulator.RAW_VALUES = True
    try:
        return percentiles(values)
    finally:
        simulator.RAW_VALUES = False


def test_percentiles_are_recomputed_from_every_shards_values() -> None:
    rng = random.Random(3)
    fleet = [round(rng.uniform(0, 4), 3) for _ in range(1001)]
    parts = [fleet[k::3] for k in range(3)]
    answers = [
        {
            "expected": len(part),
            "complete": True,
            "latency": _with_values(part),
            "latency_by_orchestrator": {
                "0": _with_values(part[::2]),
                "1": _with_values(part[1::2]),
            },
            "within_3s": sum(1 for x in part if x <= 3.0),
            "errors": {"ReportStatus": 1} if k else {},
            "reconnects": k,
        }
        for k, part in enumerate(parts)
    ]
    merged = merge_answers(answers)
    assert merged["latency"] == percentiles(fleet)  # as one process would have said
    assert "values" not in merged["latency"]
    by = merged["latency_by_orchestrator"]
    assert by["0"]["count"] + by["1"]["count"] == 1001
    assert merged["expected"] == 1001 and merged["complete"] is True
    assert merged["within_3s"] == sum(1 for x in fleet if x <= 3.0)
    assert merged["errors"] == {"ReportStatus": 2} and merged["reconnects"] == 3


def test_durations_take_the_longest_and_rates_follow() -> None:
    merged = merge_answers(
        [
            {"acked": 300, "seconds": 2.0, "batches_per_second": 150.0, "complete": True},
            {"acked": 100, "seconds": 4.0, "batches_per_second": 25.0, "complete": False},
        ]
    )
    assert merged == {"acked": 400, "seconds": 4.0, "batches_per_second": 100.0, "complete": False}


def test_a_shard_that_did_not_get_all_in_leaves_the_fleet_without_a_time() -> None:
    merged = merge_answers(
        [
            {"seconds_all": None, "subscribed": 10, "complete": False, "per_target": [5, 5]},
            {"seconds_all": 3.5, "subscribed": 9, "complete": True, "per_target": [4, 5]},
        ]
    )
    assert merged == {
        "seconds_all": None,
        "subscribed": 19,
        "complete": False,
        "per_target": [9, 10],
    }


def test_timelines_add_up_per_second() -> None:
    merged = merge_answers(
        [
            {"timeline": [[0.0, 0], [1.0, 40], [2.0, 100]]},
            {"timeline": [[0.0, 0], [1.1, 60]]},
        ]
    )
    assert merged["timeline"] == [[0.0, 0], [1.0, 100], [2.0, 160]]
