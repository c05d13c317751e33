"""Server subprocesses for the footprint: started on fixed free ports, timed to SERVING.

Unlike benchmarks/server_processes.py (ports chosen by the server, read from its INFO log), the
footprint passes free ports on the command line and logs at WARNING only, so the time
to grpc.health SERVING and the memory figures carry no log-parsing or logging cost.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
# Reconnect at once while a server starts, and never through a proxy from the environment.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
                  ("grpc.max_reconnect_backoff_ms", 20), ("grpc.enable_http_proxy", 0)]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    """A server subprocess on fixed free ports; stopped by its PID."""

    def __init__(self, command: list[str], grpc_port: int) -> None:
        self.target = f"127.0.0.1:{grpc_port}"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_serving(self, timeout: float = 60.0) -> float:
        """Seconds from process start to grpc.health SERVING."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target, options=FAST_RECONNECT) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"server exited {self.proc.returncode}:\n{err[-2000:]}")
                try:
                    reply = stub.Check(
                        health_pb2.HealthCheckRequest(), timeout=1, wait_for_ready=True
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - self.started
                except grpc.RpcError:
                    pass
                time.sleep(0.002)
        raise RuntimeError(f"{self.target} not SERVING after {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def gateway(root: Path) -> Process:
    """The real `edge-server` serving ``root``, one process: the footprint budget is
    per gateway process (the default starts one per core, each about this size)."""
    grpc_port = free_port()
    command = [
        *(str(BIN / "edge-server"), "--model-root", str(root), "--log-level", "WARNING"),
        *("--workers", "1"),
        *("--grpc-port", str(grpc_port), "--http-port", str(free_port())),
    ]
    return Process(command, grpc_port)
