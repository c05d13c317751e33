"""The orchestrator as a process: start (open-files limit raised), the CLI, CPU and RSS
from /proc, stop by PID."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

__all__ = [
    "Orchestrator",
    "OrchestratorCommand",
    "proc_cpu_seconds",
    "proc_rss_bytes",
    "raise_nofile",
]

ORCHESTRATOR = str(Path(sys.executable).parent / "edge-orchestrator")
# The console script's entry point (setup.cfg), for a source tree given with --source.
_ENTRY = (
    "import sys; from cloud_orchestrator.cli import main; "
    "sys.argv[0] = 'edge-orchestrator'; sys.exit(main())"
)
LISTENING = re.compile(r"orchestrator (\S+) listening: gRPC [^:]+:(\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def raise_nofile() -> int:
    """Soft open-files limit up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (fields 14 and 15 of /proc/PID/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine (/proc/stat): others share these cores."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


class OrchestratorCommand:
    """``edge-orchestrator`` as installed, or from another source tree (``source``: such as
    an unpacked ``git archive`` of the commit to measure), put first on PYTHONPATH."""

    def __init__(self, source: Path | None = None) -> None:
        self.source = source

    def argv(self, *args: str) -> list[str]:
        if self.source is None:
            return [ORCHESTRATOR, *args]
        return [sys.executable, "-P", "-c", _ENTRY, *args]  # -P: not the current folder

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.source is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(self.source), *filter(None, [env.get("PYTHONPATH", "")])]
            )
        return env

    def run(self, *args: str, db: str, artifacts: Path, timeout: float = 120) -> str:
        result = subprocess.run(
            self.argv(*args, "--db", db, "--artifacts", str(artifacts)),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"edge-orchestrator {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def serve_help(self) -> str:
        """``serve --help``: what this source tree supports."""
        result = subprocess.run(
            self.argv("serve", "--help"), capture_output=True, text=True, timeout=60, env=self.env()
        )
        return result.stdout

    def run_timed(self, *args: str, db: str, artifacts: Path, timeout: float = 120) -> float:
        """Run a command; the wall time its first output line arrived (printed after its
        transaction committed, before the interpreter's exit)."""
        proc = subprocess.Popen(
            self.argv(*args, "--db", db, "--artifacts", str(artifacts)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            printed = time.time()
            _, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if proc.returncode != 0:
            raise RuntimeError(f"edge-orchestrator {' '.join(args)} failed:\n{err}")
        return printed


class Orchestrator:
    """``edge-orchestrator serve`` on a free port; stderr kept (last lines) for the report."""

    def __init__(
        self, command: OrchestratorCommand, db: str, artifacts: Path, token_file: Path, *extra: str
    ) -> None:
        argv = command.argv(
            "serve",
            "--db",
            db,
            "--artifacts",
            str(artifacts),
            "--port",
            "0",
            "--gateway-token-file",
            str(token_file),
            "--log-level",
            "INFO",
            *extra,
        )
        # The server holds one socket per connection: it inherits this process's soft
        # open-files limit, raised to the hard one here (no preexec_fn: this process has
        # threads, and Python between fork and exec can hang on a lock one of them held).
        raise_nofile()
        self.proc = subprocess.Popen(
            argv,
            env=command.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._peak_rss = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._sample_rss, daemon=True).start()
        deadline = time.monotonic() + 60
        while not self._ready.wait(0.5):
            if self.proc.poll() is None and time.monotonic() < deadline:
                continue
            self.stop()
            raise RuntimeError("edge-orchestrator serve did not start:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            del self.log[:-200]
            match = LISTENING.search(line)
            if match:
                self.port = int(match[2])
                self._ready.set()

    def _sample_rss(self) -> None:
        while self.proc.poll() is None:
            try:
                self._peak_rss = max(self._peak_rss, proc_rss_bytes(self.proc.pid))
            except OSError:
                return
            time.sleep(0.25)

    def take_peak_rss_mb(self) -> float:
        """Largest RSS sampled (every 0.25 s) since the last call."""
        peak, self._peak_rss = self._peak_rss, 0
        return round(peak / 2**20, 1)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def idle_usage(self, seconds: float) -> dict[str, float]:
        """Cores used over ``seconds`` and RSS at the end."""
        before, start = proc_cpu_seconds(self.pid), time.monotonic()
        time.sleep(seconds)
        used, spent = proc_cpu_seconds(self.pid) - before, time.monotonic() - start
        return {
            "cores": round(used / spent, 3),
            "rss_mb": round(proc_rss_bytes(self.pid) / 2**20, 1),
        }

    def kill(self) -> None:
        """A replica dying without a goodbye (SIGKILL): streams drop, nothing is flushed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(15)
