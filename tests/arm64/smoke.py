"""`make arm64-smoke`: the real edge-server on an emulated aarch64 Debian bookworm.

No Docker and no binfmt_misc: `build_rootfs.sh` unpacks a bookworm arm64 userland
(cached in .cache/arm64/rootfs) and `qemu-aarch64-static -L ROOTFS` runs its Python.
This driver, from the x86 host:

1. builds the project wheel (`pip wheel --no-deps`, from a clean copy of the tree);
2. resolves it with every runtime dependency as aarch64 wheels for CPython 3.11
   (`pip download --only-binary=:all: --platform manylinux*_aarch64`; cached in
   .cache/arm64/wheels, tried offline first) and installs them with `pip install --target`
   into ROOTFS/opt/edge-gateway;
3. starts `python3 -m edge_server` under emulation on 127.0.0.1 with a shipped model
   (examples/models/digits, or a tests/model_factory model when the demo is absent);
4. checks from the host: grpc.health.v1 SERVING, reflection (v1alpha and v1) lists the
   services, Predict on a sample image gives the x86 gateway's class and a confidence
   within 1e-4, /metrics and /healthz answer; then stops the emulated server by its PID.

Timings under emulation say nothing about a board's speed: nothing here asserts them.
Exits 1 with a message naming the failed step.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from aarch64_env import (
    PROBE,
    PYTHON_VERSION,
    REPO,
    SITE,
    SmokeFailure,
    build_rootfs,
    emulated_env,
    emulated_python,
    install,
    installed_wheels,
    project_wheel,
    resolve_aarch64_wheels,
    rootfs_cached,
    run,
)
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
LISTENING = re.compile(r"listening: gRPC [^:]+:(\d+)(?: \(TLS\))?, HTTP [^:]+:(\d+)")
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]
IMPORTS_FAILED = (
    "aarch64 imports under qemu (a SIGSEGV in onnxruntime means the rootfs lacks its ARM "
    "proc/cpuinfo: delete .cache/arm64/rootfs to rebuild it)"
)


# --- model and sample -----------------------------------------------------------------------


def model_and_sample(workdir: Path) -> tuple[Path, str, bytes, str]:
    """(model root, model name, image bytes, description): the shipped demo when present."""
    demo = REPO / "examples" / "models" / "digits" / "1"
    images = sorted((REPO / "examples" / "images").glob("*.png"))
    root = workdir / "models"
    if (demo / "model.onnx").is_file() and images:
        shutil.copytree(demo, root / "digits" / "1")
        return root, "digits", images[0].read_bytes(), f"examples/models/digits/1, {images[0].name}"
    sys.path.insert(0, str(REPO / "tests"))
    factory: Any = importlib.import_module("model_factory")
    factory.build_model_root(root)
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return root, "gray", buffer.getvalue(), "tests/model_factory gray v2 (demo model absent)"


# --- gateway processes and checks -----------------------------------------------------------


class Gateway:
    """A running edge-server process; stderr is collected by a reader thread."""

    def __init__(self, command: list[str], env: dict[str, str], start_timeout: float) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.log: list[str] = []
        self.grpc_port = self.http_port = 0
        listening = threading.Event()

        def read() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.log.append(line)
                match = LISTENING.search(line)
                if match:
                    self.grpc_port, self.http_port = int(match[1]), int(match[2])
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + start_timeout
        while not listening.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                state = f"exited with {self.proc.returncode}" if self.proc.returncode else "hung"
                raise SmokeFailure(f"gateway {state} before listening:\n{self.log_tail()}")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 30) -> str:
        return "".join(self.log[-lines:])

    def wait_serving(self, timeout: float) -> float:
        """Seconds from process start to grpc.health SERVING."""
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SmokeFailure(f"gateway exited while starting:\n{self.log_tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - self.started
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise SmokeFailure(f"gateway not SERVING after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to this process's PID, then wait for it (SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise SmokeFailure(f"gateway ignored SIGTERM for {timeout:.0f} s") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextmanager
def gateway(command: list[str], env: dict[str, str], start_timeout: float) -> Iterator[Gateway]:
    process = Gateway(command, env, start_timeout)
    try:
        yield process
    finally:
        process.kill()


def predict(target: str, model: str, image: bytes) -> inference_pb2.PredictResponse:
    with grpc.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.PredictRequest(model_name=model, image=image, top_k=3)
        response: inference_pb2.PredictResponse = stub.Predict(request, timeout=120)
        return response


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
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=60) as response:
        return int(response.status), response.read().decode("utf-8", "replace")


def check_emulated(server: Gateway, model: str, image: bytes, reference: Any) -> list[str]:
    """Every host-side check; returns summary lines, raises SmokeFailure on a miss."""
    lines = []
    for version in ("v1alpha", "v1"):
        services = reflection_services(server.target, version)
        missing = REQUIRED_SERVICES - services
        if missing:
            raise SmokeFailure(f"reflection {version} lacks {sorted(missing)}: {sorted(services)}")
    lines.append(
        f"reflection v1alpha+v1 list {len(services)} services: {', '.join(sorted(services))}"
    )
    answer = predict(server.target, model, image)
    delta = abs(answer.confidence - reference.confidence)
    if answer.class_id != reference.class_id or delta > CONFIDENCE_TOLERANCE:
        raise SmokeFailure(
            f"aarch64 Predict class {answer.class_id} confidence {answer.confidence:.6f} vs x86 "
            f"class {reference.class_id} confidence {reference.confidence:.6f} (tolerance 1e-4)"
        )
    lines.append(
        f"Predict {answer.model_name}:{answer.model_version} class {answer.class_id} "
        f"confidence {answer.confidence:.6f} (x86 {reference.confidence:.6f}, |diff| {delta:.1e})"
    )
    status, body = http_get(server.http_port, "/metrics")
    predicted = [ln for ln in body.splitlines() if ln.startswith("edge_requests_total{")]
    if status != 200 or not any('method="Predict"' in ln for ln in predicted):
        raise SmokeFailure(f"/metrics answered {status} without a Predict request count")
    healthz, _ = http_get(server.http_port, "/healthz")
    if healthz != 200:
        raise SmokeFailure(f"/healthz answered {healthz}")
    lines.append(f"/metrics 200 ({len(body)} bytes, counts the Predict), /healthz 200")
    return lines


# --- the run --------------------------------------------------------------------------------


def check_probe(output: str) -> str:
    probe = json.loads(output)
    if probe["machine"] != "aarch64" or not probe["python"].startswith(PYTHON_VERSION + "."):
        raise SmokeFailure(f"emulated interpreter is not aarch64 CPython {PYTHON_VERSION}: {probe}")
    return ", ".join(f"{key} {value}" for key, value in probe.items())


def smoke(cpu: str, start_timeout: float) -> list[str]:
    summary: list[str] = []
    clock = time.monotonic()

    def step(text: str) -> None:
        nonlocal clock
        now = time.monotonic()
        summary.append(f"{now - clock:6.1f} s  {text}")
        print(f"arm64-smoke: {text} ({now - clock:.1f} s)", file=sys.stderr, flush=True)
        clock = now

    cached = rootfs_cached()
    rootfs = build_rootfs()
    step(f"rootfs {'reused from cache' if cached else 'built'}: {rootfs.relative_to(REPO)}")
    with tempfile.TemporaryDirectory(prefix="arm64-smoke-") as tmp:
        workdir = Path(tmp)
        wheel = project_wheel(workdir)
        step(f"project wheel {wheel.name}")
        source = resolve_aarch64_wheels(wheel)
        step(f"runtime dependencies resolved as aarch64 cp311 wheels (from the {source})")
        target = install(rootfs, wheel)
        wheels = installed_wheels(target)
        step(f"pip install --target {SITE}: {len(wheels)} wheels")
        for row in wheels:
            summary.append(
                f"          {row['name']}=={row['version']}  glibc>={row['min_glibc']}  "
                f"{' '.join(row['tags'])}"
            )
        env = emulated_env(cpu)
        # The import probe runs beside the x86 reference and the emulated start (2 cores).
        pool = ThreadPoolExecutor(1)
        probe = pool.submit(run, [*emulated_python(rootfs), "-c", PROBE], IMPORTS_FAILED, env)
        pool.shutdown(wait=False)

        models, model, image, described = model_and_sample(workdir)
        serve = ["--model-root", str(models), "--host", "127.0.0.1", "--grpc-port", "0",
                 "--http-port", "0", "--gateway-id", "arm64-smoke"]  # fmt: skip
        host_server = [str(Path(sys.executable).parent / "edge-server"), *serve]
        with gateway(host_server, dict(os.environ), 60) as x86:
            x86.wait_serving(60)
            reference = predict(x86.target, model, image)
            x86_exit = x86.stop()
        if x86_exit != 0:
            raise SmokeFailure(f"x86 gateway exited {x86_exit}:\n{x86.log_tail()}")
        step(f"x86 reference on {described}: class {reference.class_id}")

        command = [*emulated_python(rootfs), "-m", "edge_server", *serve]
        try:
            with gateway(command, env, start_timeout) as arm:
                serving = arm.wait_serving(start_timeout)
                platform = check_probe(probe.result())
                step(
                    f"aarch64 edge-server (PID {arm.proc.pid}) SERVING {serving:.1f} s after start"
                )
                summary.append(f"          under QEMU_CPU={cpu}: {platform}")
                try:
                    checks = check_emulated(arm, model, image, reference)
                except (grpc.RpcError, OSError) as exc:
                    raise SmokeFailure(f"check against the emulated gateway failed: {exc}") from exc
                summary += [f"          {line}" for line in checks]
                step("host-side checks passed")
                code = arm.stop()
                if code != 0:
                    raise SmokeFailure(
                        f"emulated gateway exited {code} after SIGTERM:\n{arm.log_tail()}"
                    )
                step(f"SIGTERM to PID {arm.proc.pid}: exited 0")
        except SmokeFailure:
            check_probe(probe.result())  # an import failure explains a failed start best
            raise
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cpu",
        default=os.environ.get("ARM64_QEMU_CPU", "cortex-a72"),
        help="QEMU_CPU model: cortex-a72 (Raspberry Pi 4) or cortex-a57 (Jetson Nano)",
    )
    parser.add_argument("--start-timeout", type=float, default=240.0, help="seconds to SERVING")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        summary = smoke(args.cpu, args.start_timeout)
    except SmokeFailure as exc:
        print(
            f"arm64-smoke: FAILED after {time.monotonic() - started:.1f} s: {exc}", file=sys.stderr
        )
        return 1
    print(f"arm64-smoke: PASSED in {time.monotonic() - started:.1f} s (QEMU_CPU={args.cpu})")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
