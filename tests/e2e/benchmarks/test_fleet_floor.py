"""The assign floor of the fleet benchmark (benchmarks/fleet/ceiling.py measure_assign):
two real stand-in processes and the real simulator; every gateway sees the new version
through the stand-in it is connected to, both halves of the fleet are measured."""

from __future__ import annotations

import pytest

from benchmarks.fleet.ceiling import measure_assign


@pytest.mark.parametrize("processes", [1, 2])
def test_both_stand_ins_send_the_new_version_to_every_gateway(processes: int) -> None:
    floor = measure_assign(40, 2, ramp=0.5, processes=processes)
    assert floor["subscribed"] == 40 and floor["complete"], floor
    assert floor["latency"]["count"] == 40 and floor["within_10s"] == 40
    halves = floor["latency_by_orchestrator"]
    assert sorted(halves) == ["0", "1"] and sum(h["count"] for h in halves.values()) == 40
    assert floor["errors"] == {} and len(floor["standin_cpu_seconds"]) == 2
    assert floor["simulator_processes"] == processes
