"""The simulator as a child process: one JSON command per line, one JSON answer back,
each with a deadline; stopped by PID."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from typing import Any

from benchmarks.fleet.processes import proc_cpu_seconds, raise_nofile

__all__ = ["SimulatorProcess"]


class SimulatorProcess:
    def __init__(
        self, targets: list[str], auth: str, channels: int, shard: tuple[int, int] = (0, 1)
    ) -> None:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.fleet.simulator",
            "--targets",
            ",".join(targets),
            "--auth",
            auth,
            "--channels",
            str(channels),
            "--shard",
            f"{shard[0]}/{shard[1]}",
        ]
        raise_nofile()  # inherited by the simulator (no preexec_fn: see processes.py)
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._answers: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU seconds so far (0 once the process is gone: then its phase says why)."""
        try:
            return proc_cpu_seconds(self.pid)
        except OSError:
            return 0.0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, command: dict[str, Any]) -> bool:
        """Write ``command``; False when the process is gone."""
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            return False
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return True

    def receive(self, deadline: float, name: str) -> dict[str, Any]:
        """The answer to the command sent last, or an ``error`` entry."""
        try:
            answer: dict[str, Any] = json.loads(self._answers.get(timeout=deadline))
        except queue.Empty:
            self.stop()  # a late answer would be read as the next command's
            return {"error": f"no answer to {name} within {deadline:.0f} s"}
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)
