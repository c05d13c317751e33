"""Where an orchestrator's time goes in one phase: py-spy on each replica's PID while the
phase runs (``python -m benchmarks.fleet --profile``), folded into self, inclusive and
per-library shares by benchmarks/py_spy_profiles.py. The raw collapsed stacks stay in
the output folder for a flame graph."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks import py_spy_profiles

__all__ = ["PhaseProfiler"]


class PhaseProfiler:
    """Off unless given a folder; ``results`` maps phase -> one fold per PID."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.enabled = folder is not None
        self.results: dict[str, list[dict[str, Any]]] = {}

    @contextlib.contextmanager
    def during(
        self, phase: str, pids: list[int], seconds: float, gil_only: bool = False
    ) -> Iterator[None]:
        """Samples every PID for ``seconds`` from entry; the exit waits for the samples.
        ``gil_only``: only the thread holding the GIL (what bounds a busy process)."""
        if self.folder is None or not pids:
            yield
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        found: list[dict[str, Any]] = [{} for _ in pids]

        def sample(index: int, pid: int) -> None:
            out = self.folder / f"{phase}-{pid}.collapsed"  # type: ignore[operator]
            try:
                found[index] = {
                    "pid": pid,
                    "gil_only": gil_only,
                    **py_spy_profiles.record(pid, seconds, out, gil_only=gil_only),
                }
            except Exception as err:  # a profile lost is no reason to lose the run
                found[index] = {"pid": pid, "error": f"{type(err).__name__}: {err}"[:300]}

        threads = [
            threading.Thread(target=sample, args=(i, pid), daemon=True)
            for i, pid in enumerate(pids)
        ]
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            for thread in threads:
                thread.join(seconds + 90)
            self.results[phase] = found
