"""Start and stop the real `edge-server` for benchmarks (free ports from its log line)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

LISTENING = re.compile(r"listening: gRPC [^:]+:(\d+)(?: \(TLS\))?, HTTP [^:]+:(\d+)")


class GatewayProcess:
    def __init__(self, model_root: Path, extra_args: list[str] | None = None) -> None:
        self.command = [
            str(Path(sys.executable).parent / "edge-server"),
            "--model-root", str(model_root), "--grpc-port", "0", "--http-port", "0",
            "--log-level", "WARNING", *(extra_args or []),
        ]  # fmt: skip
        self.target = ""
        self.started_at = 0.0
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> GatewayProcess:
        self.started_at = time.perf_counter()
        # INFO only for the listening line; WARNING-level noise afterwards is fine.
        self.command[self.command.index("--log-level") + 1] = "INFO"
        self.proc = subprocess.Popen(self.command, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                match = LISTENING.search(line)
                if match:
                    self.target = f"127.0.0.1:{match[1]}"
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(60):
            self.proc.kill()
            raise RuntimeError("edge-server did not start")
        self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 120.0) -> float:
        """Seconds from process start to grpc.health SERVING."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.perf_counter() - self.started_at
                except grpc.RpcError:
                    pass
                time.sleep(0.01)
        raise TimeoutError("gateway never became SERVING")

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
