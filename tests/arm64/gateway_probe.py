"""Host-side checks of a running edge-server (emulated, in a container or native).

Shared by `make arm64-smoke` (smoke.py) and `make arm64-image` (image.py): a started
process whose stderr is read for its listening line, grpc.health.v1 until SERVING,
reflection, Predict, /metrics and /healthz, all over 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc

CONFIDENCE_TOLERANCE = 1e-4
REQUIRED_SERVICES = {
    "edge.v1.InferenceService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
}
# The primary's line; a worker's says "worker-N" before the logger name.
LISTENING = re.compile(r"listening: gRPC [^:]+:(\d+)(?: \(TLS\))?, HTTP [^:]+:(\d+)")
WORKER_LOG = re.compile(r"\bworker-\d+\b")
WORKER_SERVING = re.compile(r"worker (\d+) \(pid (\d+)\) is serving")
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


class CheckFailure(Exception):
    """A check failed; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """A running edge-server process; stderr is collected by a reader thread."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str, timeout: float) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd
        )
        self.log: list[str] = []
        self.grpc_port = self.http_port = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.wait_log(LISTENING, timeout)
        except CheckFailure:
            self.kill()
            raise

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            match = LISTENING.search(line)
            if match and not WORKER_LOG.search(line) and not self.grpc_port:
                self.grpc_port, self.http_port = int(match[1]), int(match[2])
            with self._changed:
                self.log.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_log(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first line of the primary's log matching `pattern` (workers' lines skipped)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.log[seen:]:
                    match = pattern.search(line)
                    if match and (pattern is not LISTENING or not WORKER_LOG.search(line)):
                        return match
                seen = len(self.log)
                if self.proc.poll() is not None:
                    raise CheckFailure(
                        f"gateway exited {self.proc.returncode} before logging "
                        f"{pattern.pattern!r}:\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise CheckFailure(
                        f"gateway did not log {pattern.pattern!r} in {timeout:.0f} s:\n"
                        f"{self.log_tail()}"
                    )
                self._changed.wait(0.5)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 30) -> str:
        return "".join(self.log[-lines:])

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to this process's PID, then wait for it (SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CheckFailure(f"gateway ignored SIGTERM for {timeout:.0f} s") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextmanager
def gateway(command: list[str], env: dict[str, str], cwd: str, timeout: float) -> Iterator[Gateway]:
    process = Gateway(command, env, cwd, timeout)
    try:
        yield process
    finally:
        process.kill()


def wait_serving(target: str, timeout: float, alive: Callable[[], str | None]) -> None:
    """grpc.health.v1 Check until SERVING; `alive` returns why the server is gone, or None."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            gone = alive()
            if gone:
                raise CheckFailure(gone)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise CheckFailure(f"{target} not SERVING after {timeout:.0f} s")


def x86_reference(models: Path, model: str, image: bytes, cwd: str) -> Any:
    """The x86 gateway of the dev venv answers the same Predict: the expected answer."""
    serve = ["--model-root", str(models), "--host", "127.0.0.1", "--grpc-port", "0",
             "--http-port", "0", "--gateway-id", "x86-reference"]  # fmt: skip
    host_server = [str(Path(sys.executable).parent / "edge-server"), *serve]
    with gateway(host_server, dict(os.environ), cwd, 60) as x86:
        wait_serving(x86.target, 60, lambda: None)
        reference = predict(x86.target, model, image)
        code = x86.stop()
    if code != 0:
        raise CheckFailure(f"x86 gateway exited {code}:\n{x86.log_tail()}")
    return reference


def predict(target: str, model: str, image: bytes) -> inference_pb2.PredictResponse:
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.PredictRequest(model_name=model, image=image, top_k=3)
        response: inference_pb2.PredictResponse = stub.Predict(request, timeout=120)
        return response


def same_answer(answer: Any, reference: Any) -> str:
    """One summary line; CheckFailure when class or confidence differ from the reference."""
    delta = abs(answer.confidence - reference.confidence)
    if answer.class_id != reference.class_id or delta > CONFIDENCE_TOLERANCE:
        raise CheckFailure(
            f"aarch64 Predict class {answer.class_id} confidence {answer.confidence:.6f} vs x86 "
            f"class {reference.class_id} confidence {reference.confidence:.6f} (tolerance 1e-4)"
        )
    return (
        f"Predict {answer.model_name}:{answer.model_version} class {answer.class_id} "
        f"confidence {answer.confidence:.6f} (x86 {reference.confidence:.6f}, |diff| {delta:.1e})"
    )


def reflection_services(target: str, version: str) -> set[str]:
    """list_services through grpc.reflection.<version> (v1 and v1alpha are wire-identical)."""
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(iter(call(iter([request]), timeout=60)))
        return {service.name for service in reply.list_services_response.service}


def http_get(port: int, path: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def check_services(
    target: str, http_port: int, model: str, image: bytes, reference: Any
) -> list[str]:
    """Reflection, Predict against the x86 reference, /metrics, /healthz; summary lines."""
    lines = []
    for version in ("v1alpha", "v1"):
        services = reflection_services(target, version)
        missing = REQUIRED_SERVICES - services
        if missing:
            raise CheckFailure(f"reflection {version} lacks {sorted(missing)}: {sorted(services)}")
    lines.append(
        f"reflection v1alpha+v1 list {len(services)} services: {', '.join(sorted(services))}"
    )
    lines.append(same_answer(predict(target, model, image), reference))
    status, body = http_get(http_port, "/metrics")
    predicted = [ln for ln in body.splitlines() if ln.startswith("edge_requests_total{")]
    if status != 200 or not any('method="Predict"' in ln for ln in predicted):
        raise CheckFailure(f"/metrics answered {status} without a Predict request count")
    healthz, _ = http_get(http_port, "/healthz")
    if healthz != 200:
        raise CheckFailure(f"/healthz answered {healthz}")
    lines.append(f"/metrics 200 ({len(body)} bytes, counts the Predict), /healthz 200")
    return lines
