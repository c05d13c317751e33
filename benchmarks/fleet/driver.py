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
    def __init__(self, targets: list[str], auth: str, channels: int) -> None:
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
        ]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=raise_nofile,
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

    def call(self, deadline: float, /, **command: Any) -> dict[str, Any]:
        """Send a command; its answer, or an ``error`` entry when none came in time."""
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            return {"error": f"simulator exited with {self.proc.returncode}"}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        try:
            answer: dict[str, Any] = json.loads(self._answers.get(timeout=deadline))
        except queue.Empty:
            self.stop()  # a late answer would be read as the next command's
            return {"error": f"no answer to {command['cmd']} within {deadline:.0f} s"}
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
