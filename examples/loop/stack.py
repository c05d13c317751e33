"""The processes of the demo: an ``edge-orchestrator serve`` on SQLite and pull-mode
``edge-server`` gateways, all on 127.0.0.1 with ports the kernel picks; the CLIs run as
an operator would run them. Every process is stopped by its PID."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["BIN", "Process", "Stack", "model_tools", "until"]

BIN = Path(sys.executable).parent
ORCHESTRATOR_READY = re.compile(r"orchestrator \S+ listening: gRPC [^:]+:(\d+)")
GATEWAY_READY = re.compile(r"listening: gRPC [^:]+:(\d+)")


def until(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


class Process:
    """A server whose stderr goes to ``log``; ready when ``ready`` matches a line."""

    def __init__(self, command: list[str], ready: re.Pattern[str], log: Path) -> None:
        self.log = log
        self.port = 0
        self._ready = threading.Event()
        self._file = log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._reader = threading.Thread(target=self._read, args=(ready,), daemon=True)
        self._reader.start()
        if not self._ready.wait(60):
            self.stop()
            raise RuntimeError(f"{command[0]} did not start; its log: {log}")

    def _read(self, ready: re.Pattern[str]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._file.write(line)
            self._file.flush()
            match = ready.search(line)
            if match and not self._ready.is_set():
                self.port = int(match[1])
                self._ready.set()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # this PID only
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)  # the last lines reach the log before it closes
        self._file.close()


class Stack:
    """One orchestrator and its gateways under ``work``; ``close`` stops them all."""

    def __init__(self, work: Path, trusted_keys: Path) -> None:
        self.work = work
        self.trusted_keys = trusted_keys
        self.db = f"sqlite:///{work / 'orchestrator.db'}"
        self.artifacts = work / "artifacts"
        self.orchestrator: Process | None = None
        self.gateways: dict[str, Process] = {}
        self.commands: list[str] = []

    def start_orchestrator(self) -> None:
        self.orchestrator = Process(
            [
                str(BIN / "edge-orchestrator"), "serve", "--db", self.db,
                "--artifacts", str(self.artifacts), "--port", "0",
                "--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2",
                "--poll-seconds", "0.2", "--log-level", "INFO",
            ],
            ORCHESTRATOR_READY,
            self.work / "orchestrator.log",
        )  # fmt: skip

    def start_gateway(self, gateway_id: str) -> Process:
        assert self.orchestrator is not None
        root = self.work / gateway_id
        root.mkdir()
        gateway = Process(
            [
                str(BIN / "edge-server"), "--model-root", str(root),
                "--host", "127.0.0.1", "--grpc-port", "0", "--http-port", "0",
                "--orchestrator", self.orchestrator.target, "--gateway-id", gateway_id,
                "--gateway-labels", "site=lab", "--trusted-keys", str(self.trusted_keys),
                "--feedback-bucket-seconds", "1", "--rollback-window-seconds", "0",
                "--shadow-sample-rate", "1", "--inference-workers", "1",
                "--preprocess-workers", "1",
            ],
            GATEWAY_READY,
            self.work / f"{gateway_id}.log",
        )  # fmt: skip
        self.gateways[gateway_id] = gateway
        return gateway

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``edge-orchestrator ARGS`` against this stack's database and artifacts."""
        self.commands.append("edge-orchestrator " + " ".join(args))
        command = [str(BIN / "edge-orchestrator"), *args, "--db", self.db]
        command += ["--artifacts", str(self.artifacts)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            raise RuntimeError(f"edge-orchestrator {args[0]} failed: {done.stderr.strip()}")
        return done

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def close(self) -> None:
        for gateway in self.gateways.values():
            gateway.stop()
        if self.orchestrator is not None:
            self.orchestrator.stop()


def model_tools(*args: str) -> subprocess.CompletedProcess[str]:
    """``model-tools ARGS``; a failure raises with its one-line error."""
    done = subprocess.run(
        [str(BIN / "model-tools"), *args], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"model-tools {args[0]} failed: {done.stderr.strip()}")
    return done
