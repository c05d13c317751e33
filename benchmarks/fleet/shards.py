"""The simulated fleet in several simulator processes, answering as one.

One simulator process puts the receipt of every gateway's messages through one Python
event loop: with 10,000 gateways that loop alone takes about 2 s to read an assign that
the servers sent in 0.5 s (the assign floor of ceiling.py, with stand-ins that do
nothing, measured it), while real gateways each read with a CPU of their own. The fleet
is therefore split over ``processes`` simulators (gateway i in process i mod N, ids
unchanged), on the same cores as before; their answers are merged here: counts added,
percentiles recomputed from the raw values every shard sends, timelines added up.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.fleet.driver import SimulatorProcess
from benchmarks.fleet.simulator import percentiles

__all__ = ["SimulatorShards", "merge_answers"]

# Keys whose merged value is the largest of the shards' (a duration or a size), not a sum.
_LARGEST = {"seconds_all", "seconds", "bundle_size"}
_PERCENTILE_KEYS = {"count", "min", "p50", "p99", "max", "values"}


class SimulatorShards:
    """``processes`` simulator processes behind SimulatorProcess's interface."""

    def __init__(self, targets: list[str], auth: str, channels: int, processes: int) -> None:
        self.shards = [
            SimulatorProcess(targets, auth, channels, shard=(k, processes))
            for k in range(processes)
        ]

    def cpu_seconds(self) -> float:
        return sum(shard.cpu_seconds() for shard in self.shards)

    def alive(self) -> bool:
        return all(shard.alive() for shard in self.shards)

    def call(self, deadline: float, /, **command: Any) -> dict[str, Any]:
        """The command to every shard at once; one merged answer."""
        sent = [shard.send(dict(command)) for shard in self.shards]
        until = time.monotonic() + deadline
        answers = []
        for k, (shard, ok) in enumerate(zip(self.shards, sent, strict=True)):
            if not ok:
                return {"error": f"simulator shard {k} exited"}
            answer = shard.receive(max(0.0, until - time.monotonic()), command["cmd"])
            if "error" in answer:
                return {"error": f"simulator shard {k}: {answer['error']}"}
            answers.append(answer)
        return answers[0] if len(answers) == 1 else merge_answers(answers)

    def stop(self) -> None:
        for shard in self.shards:
            shard.stop()


def merge_answers(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One answer from the shards' answers to the same command."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for answer in answers for k in answer):
        values = [answer[key] for answer in answers if key in answer]
        merged[key] = _merge(key, values)
    if "acked" in merged and merged.get("seconds"):
        merged["batches_per_second"] = round(merged["acked"] / merged["seconds"], 1)
    return merged


def _merge(key: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if not present or (key in _LARGEST and len(present) < len(values)):
        return None  # a shard without the figure (not all subscribed): the fleet lacks it too
    first = present[0]
    if isinstance(first, dict):
        if set(first) <= _PERCENTILE_KEYS and "values" in first:
            merged = percentiles(v for part in present for v in part["values"])
            merged.pop("values", None)
            return merged
        return merge_answers(present)
    if isinstance(first, bool):
        return all(present)
    if isinstance(first, (int, float)):
        return max(present) if key in _LARGEST else _sum(present)
    if key == "timeline":
        return _timeline(present)
    if key == "resumed_offsets":
        return sorted({o for part in present for o in part})[:5]
    if key == "per_target":
        return [sum(column) for column in zip(*present, strict=True)]
    return first


def _sum(values: list[float]) -> float:
    total = sum(values)
    return round(total, 3) if isinstance(total, float) else total


def _timeline(parts: list[list[list[float]]]) -> list[list[float]]:
    """[elapsed, subscribed] per second and shard -> the fleet's, shards added up."""
    longest = max(parts, key=len)
    rows = []
    for i, (elapsed, _) in enumerate(longest):
        rows.append([elapsed, sum(part[min(i, len(part) - 1)][1] for part in parts if part)])
    return rows
