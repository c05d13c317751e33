"""The inline policy's costs are CPU time: waiting (for a core, the GIL, I/O) is not
work the event loop would do if the stage ran inline."""

from __future__ import annotations

import time

import numpy as np

from edge_server.inference.predictor import _timed


def test_a_stage_that_waits_costs_only_its_cpu_time() -> None:
    def waits() -> np.ndarray:
        time.sleep(0.05)
        return np.zeros(1)

    _, seconds = _timed(waits)
    assert seconds < 0.01  # 50 ms of wall time, almost no CPU


def test_a_stage_that_computes_costs_its_cpu_time() -> None:
    def computes() -> np.ndarray:
        until = time.thread_time() + 0.03
        while time.thread_time() < until:
            pass
        return np.zeros(1)

    _, seconds = _timed(computes)
    assert seconds >= 0.03
