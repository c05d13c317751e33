"""Start and stop the real `edge-server` for benchmarks, and read what it reports.

Ports are free ones picked by the server (from its "listening" log line); request
counts by gRPC status code come from its /metrics, which is how the benchmark checks
that every request a load generator counted as done really succeeded.

With ``--workers N`` (N > 1) among its flags the gateway is N processes on one port:
the primary (the PID started here) and N-1 replicas it spawns; the kernel spreads
connections over the processes listening when each connection opens, so ``start``
waits until every worker serves with its models ready. CPU and RSS then cover all of
them (``pids``), and the primary's /metrics already merges every worker's counters.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks import payloads
from benchmarks.cpu_accounting import child_pids, rss_mb
from benchmarks.gateway_workers import reap_replicas, sum_rss_mb, worker_count

# `--workers 0` (the default) logs the count it chose before it listens.
AUTO_WORKERS = re.compile(r"workers: (\d+) \(automatic")
LISTENING = re.compile(r"listening: gRPC [^:]+:(\d+)(?: \(TLS\))?, HTTP [^:]+:(\d+)")
_SAMPLE = re.compile(r"^edge_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')
_MODEL_READY = re.compile(r"^edge_model_ready\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)
EDGE_SERVER = Path(sys.executable).parent / "edge-server"


class GatewayProcess:
    """`edge-server` as a child process on free ports; a context manager."""

    def __init__(
        self,
        model_root: Path,
        extra_args: list[str] | None = None,
        patches: list[str] | None = None,
    ) -> None:
        """``patches``: run through benchmarks.patched_gateway with these proposed changes."""
        launcher = [str(EDGE_SERVER)]
        if patches:
            launcher = [sys.executable, "-m", "benchmarks.patched_gateway", ",".join(patches), "--"]
        self.command = [
            *launcher,
            "--model-root",
            str(model_root),
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--log-level",
            "INFO",
            # The v2-shm payloads register their region with this app credential.
            "--shared-memory-app-tokens",
            str(payloads.write_app_tokens(Path(tempfile.mkdtemp(prefix="edge-bench-")))),
            *(extra_args or []),
        ]
        self.extra_args = list(extra_args or [])
        self.target = ""
        self.grpc_port = 0
        self.http_port = 0
        self.started_at = 0.0
        self.listening_s = float("nan")
        self.serving_s = float("nan")
        self.models_ready_s = float("nan")
        self.workers = worker_count(self.extra_args)
        self.workers_ready_s = float("nan")
        self.proc: subprocess.Popen[str] | None = None
        self.log_tail: collections.deque[str] = collections.deque(maxlen=40)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The primary and its live child processes (the ``--workers`` replicas)."""
        return [self.pid, *child_pids(self.pid)]

    def __enter__(self) -> GatewayProcess:
        self.start()
        return self

    def start(self, wait: bool = True) -> None:
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
        )
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:  # keep draining: a full pipe would block the server
                self.log_tail.append(line.rstrip())
                if automatic := AUTO_WORKERS.search(line):
                    self.workers = int(automatic[1])
                match = LISTENING.search(line)
                if match and not ready.is_set():
                    self.grpc_port, self.http_port = int(match[1]), int(match[2])
                    self.target = f"127.0.0.1:{self.grpc_port}"
                    self.listening_s = time.perf_counter() - self.started_at
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not wait:
            return
        if not ready.wait(60):
            self.stop()
            raise RuntimeError("edge-server did not start:\n" + "\n".join(self.log_tail))
        self.serving_s = self.wait_serving()
        self.models_ready_s = self.wait_models_ready()
        if self.workers > 1:
            self.workers_ready_s = self.wait_workers()

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
                time.sleep(0.005)
        raise TimeoutError("gateway never became SERVING")

    def wait_models_ready(self, timeout: float = 300.0) -> float:
        """Seconds from process start until every model reports READY (edge.v1 Health)."""
        from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc, types_pb2

        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            while time.monotonic() < deadline:
                reply = stub.Health(inference_pb2.HealthRequest(), timeout=5)
                states = [m.state for m in reply.models]
                if states and all(state == types_pb2.MODEL_STATE_READY for state in states):
                    return time.perf_counter() - self.started_at
                if any(state == types_pb2.MODEL_STATE_FAILED for state in states):
                    raise RuntimeError(f"a model failed to load: {reply}")
                time.sleep(0.01)
        raise TimeoutError("the gateway's models never became READY")

    def wait_workers(self, timeout: float = 120.0) -> float:
        """Seconds from process start until all ``workers`` report every model ready
        on the primary's merged /metrics (a replica appears there once it serves)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            ready: dict[str, bool] = {}
            for match in _MODEL_READY.finditer(self.metrics_text()):
                worker = dict(_LABEL.findall(match["labels"])).get("worker", "0")
                ready[worker] = ready.get(worker, True) and float(match["value"]) == 1.0
            if all(ready.get(str(index)) for index in range(self.workers)):
                return time.perf_counter() - self.started_at
            time.sleep(0.05)
        raise TimeoutError(
            f"not all {self.workers} gateway workers became ready:\n" + "\n".join(self.log_tail)
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_mb(self) -> float:
        """Resident set of all the gateway's processes together, MiB."""
        return sum_rss_mb(self.pids, "VmRSS")

    def peak_rss_mb(self) -> float:
        """The sum of each process's own peak (VmHWM), MiB: with several workers an
        upper bound of their simultaneous peak, as the peaks need not coincide."""
        return sum_rss_mb(self.pids, "VmHWM")

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text: str = reply.read().decode()
        return text

    def request_counts(self, method: str, model: str, by: str = "code") -> dict[str, int]:
        """edge_requests_total for one method and model, by gRPC status code (or by
        another label: ``by="worker"`` counts every status per gateway process)."""
        counts: dict[str, int] = collections.Counter()
        for match in _SAMPLE.finditer(self.metrics_text()):
            labels = dict(_LABEL.findall(match["labels"]))
            if labels.get("method") == method and labels.get("model") in (model, "_unknown"):
                counts[labels.get(by, "0")] += int(float(match["value"]))
        return dict(counts)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 20 s; returns the exit code. The primary stops
        its replicas; any still running 10 s after it exited is killed."""
        if self.proc is None:
            return None
        replicas = child_pids(self.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        reap_replicas(replicas)
        return self.proc.returncode

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ListeningProcess:
    """A bench server module as a child process: it prints ``listening: PORT`` once
    bound and stops on SIGTERM. Such servers have no /metrics to check against."""

    def __init__(self, module: str, args: list[str], quiet: bool = False) -> None:
        """``quiet``: drop the child's stderr (servers that log every request there)."""
        self.command = [sys.executable, "-m", module, *args]
        self.module = module
        self.quiet = quiet
        self.port = 0
        self.target = ""
        self.url = ""  # HTTP servers: their /predict
        self.proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        return [self.pid]

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if self.quiet else None,
            text=True,
            cwd=Path(__file__).parent.parent,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening: "):
            self.__exit__()
            raise RuntimeError(f"{self.module} did not start: {line!r}")
        self.port = int(line.split()[1])
        self.target = f"127.0.0.1:{self.port}"
        self.url = f"http://127.0.0.1:{self.port}/predict"
        return self

    def request_counts(self, method: str, model: str) -> dict[str, int] | None:
        return None

    def peak_rss_mb(self) -> float:
        return rss_mb(self.pid, "VmHWM")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class NaiveProcess(ListeningProcess):
    """benchmarks/naive_server.py as a child process."""

    def __init__(self, model_dir: Path, echo: bool = False, aio: bool = False) -> None:
        flags = [*(["--echo"] if echo else []), *(["--aio"] if aio else [])]
        super().__init__("benchmarks.naive_server", ["--model-dir", str(model_dir), *flags])


class FloorProcess(ListeningProcess):
    """benchmarks/serving_floor.py as a child process: ``protocol`` is grpc-aio,
    grpc-sync (use ``target``) or http (use ``url``)."""

    def __init__(self, model_dir: Path, protocol: str) -> None:
        args = ["--model-dir", str(model_dir), "--protocol", protocol]
        super().__init__("benchmarks.serving_floor", args)
