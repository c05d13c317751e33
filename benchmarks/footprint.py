"""Footprint of the gateway on this machine: memory, cold start, install size.

- Peak RSS (VmHWM of /proc/<pid>/status) of a real `edge-server` serving one model:
  after grpc.health SERVING, after 1,000 and after 2,000 sequential image Predicts (the
  growth between the two shows unbounded caches). Beside it, in the same run: a bare
  interpreter, a bare ONNX Runtime session process with the same model and threads
  (1,000 runs), and an interpreter that only imports the gateway (`edge_server.app`).
  Budget: gateway peak <= ONNX Runtime session cost (session process - bare interpreter)
  + 60 MiB for Python, gRPC and our code.
- Cold start: process start to grpc.health SERVING on the demo model, median of 5, beside
  a bare grpc.aio + health + ONNX Runtime server with the same model. Goal: < 0.6 s.
- Install size of the runtime dependencies (setup.cfg install_requires, pinned by
  constraints.txt): wheel and installed size per distribution, x86_64 here and aarch64
  from `make arm64-smoke`'s cache when present.

Prints Markdown tables; writes bench-results/footprint.json. Models: examples/models/digits
and model_tools' static-INT8 MobileNetV2 via benchmarks.models (the row is skipped with a
note when torch/model_tools cannot build it).
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edge.v1 import inference_pb2, inference_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench-results"
ROOTS = REPO / ".cache" / "bench" / "footprint"
ARM64_SITE = REPO / ".cache" / "arm64" / "rootfs" / "opt" / "edge-gateway"
ARM64_WHEELS = REPO / ".cache" / "arm64" / "wheels"
BIN = Path(sys.executable).parent
MIB = 1024 * 1024
BUDGET_MIB = 60.0
COLD_START_GOAL_S = 0.6
BARE_NAME = "bare grpc.aio + health + ONNX Runtime"
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 5), ("grpc.min_reconnect_backoff_ms", 5),
                  ("grpc.max_reconnect_backoff_ms", 20), ("grpc.enable_http_proxy", 0)]  # fmt: skip

# Child processes print their /proc/self/status memory lines as JSON.
_STATUS = (
    "def status():\n"
    "    rows = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
    "    return {k: int(rows[k].split()[0]) * 1024 for k in ('VmHWM', 'VmRSS')}\n"
)
BARE = _STATUS + "import json; print(json.dumps(status()))"
IMPORT_GATEWAY = _STATUS + "import json, edge_server.app; print(json.dumps(status()))"
ORT_SESSION = (
    _STATUS
    + """import json, sys, numpy as np, onnxruntime as ort
path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
imported = status()
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
options.log_severity_level = 3
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
spec = session.get_inputs()[0]
shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
feed = {spec.name: np.random.default_rng(0).random(shape, dtype=np.float32)}
for _ in range(runs):
    session.run(None, feed)
print(json.dumps({"imported": imported, **status()}))
"""
)
BARE_SERVER = """import asyncio, sys, onnxruntime as ort, grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
async def main():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port("127.0.0.1:" + sys.argv[2])
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()
asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def memory_of(pid: int) -> dict[str, int]:
    rows = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {key: int(rows[key].split()[0]) * 1024 for key in ("VmHWM", "VmRSS")}


def child_json(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def mib(value: float) -> float:
    return round(value / MIB, 2)


# --- models --------------------------------------------------------------------------------


def demo_model() -> tuple[Path, bytes, str]:
    """(model root holding only the demo, sample image, note)."""
    demo = REPO / "examples" / "models" / "digits" / "1"
    images = sorted((REPO / "examples" / "images").glob("*.png"))
    root = ROOTS / "digits"
    if (demo / "model.onnx").is_file() and images:
        target = root / "digits" / "1"
        target.mkdir(parents=True, exist_ok=True)
        for item in demo.iterdir():
            (target / item.name).write_bytes(item.read_bytes())
        return root, images[0].read_bytes(), "examples/models/digits/1"
    raise SystemExit("footprint: examples/models/digits/1 and examples/images/*.png are needed")


def mobilenet_int8() -> tuple[Path, bytes, str] | str:
    """(model root, JPEG, note) for the static-INT8 MobileNetV2, or why it is skipped."""
    try:
        from benchmarks import models

        built = models.model_root() / "mobilenet-int8" / "1"
        image = models.jpeg_photo()
    except Exception as exc:  # torch, model_tools or scikit-image missing or failing
        return f"skipped: cannot build model_tools' INT8 MobileNetV2 ({type(exc).__name__}: {exc})"
    root = ROOTS / "mobilenet-int8"
    target = root / "mobilenet-int8" / "1"
    target.mkdir(parents=True, exist_ok=True)
    for item in built.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    size = (target / "model.onnx").stat().st_size
    return root, image, f"model_tools MobileNetV2, static INT8 QDQ ({mib(size)} MiB file)"


# --- the gateway process -------------------------------------------------------------------


class Process:
    """A server subprocess on fixed free ports; stopped by its PID."""

    def __init__(self, command: list[str], grpc_port: int) -> None:
        self.target = f"127.0.0.1:{grpc_port}"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait_serving(self, timeout: float = 60.0) -> float:
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
    grpc_port = free_port()
    command = [
        *(str(BIN / "edge-server"), "--model-root", str(root), "--log-level", "WARNING"),
        *("--grpc-port", str(grpc_port), "--http-port", str(free_port())),
    ]
    return Process(command, grpc_port)


def predicts(target: str, image: bytes, count: int) -> None:
    with grpc.insecure_channel(target, options=FAST_RECONNECT) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.PredictRequest(image=image, top_k=3)
        for _ in range(count):
            stub.Predict(request, timeout=30)


def memory_row(name: str, root: Path, image: bytes, note: str) -> dict[str, Any]:
    model = next(root.glob("*/1/model.onnx"))
    server = gateway(root)
    try:
        server.wait_serving()
        at_serving = memory_of(server.proc.pid)
        predicts(server.target, image, 1000)
        after_1k = memory_of(server.proc.pid)
        predicts(server.target, image, 1000)
        after_2k = memory_of(server.proc.pid)
    finally:
        server.stop()
    bare = child_json(BARE)
    imports = child_json(IMPORT_GATEWAY)
    # The gateway's default on this machine: one worker per core, cores // workers threads.
    session = child_json(ORT_SESSION, str(model), "1", "1000")
    session_cost = session["VmHWM"] - bare["VmHWM"]
    overhead = after_1k["VmHWM"] - session_cost
    return {
        "model": name,
        "note": note,
        "bare_interpreter_hwm_mib": mib(bare["VmHWM"]),
        "import_gateway_hwm_mib": mib(imports["VmHWM"]),
        "ort_import_rss_mib": mib(session["imported"]["VmRSS"]),
        "ort_session_process_hwm_mib": mib(session["VmHWM"]),
        "ort_session_cost_mib": mib(session_cost),
        "gateway_serving_hwm_mib": mib(at_serving["VmHWM"]),
        "gateway_1k_hwm_mib": mib(after_1k["VmHWM"]),
        "gateway_2k_hwm_mib": mib(after_2k["VmHWM"]),
        "gateway_rss_growth_1k_to_2k_mib": mib(after_2k["VmRSS"] - after_1k["VmRSS"]),
        "gateway_overhead_mib": mib(overhead),
        "budget_mib": mib(session_cost + BUDGET_MIB * MIB),
        "within_budget": overhead <= BUDGET_MIB * MIB,
    }


def cold_start(root: Path, runs: int = 5) -> dict[str, Any]:
    model = next(root.glob("*/1/model.onnx"))
    results: dict[str, Any] = {}
    bare_port = free_port()
    commands: dict[str, Callable[[], Process]] = {
        "edge-server": lambda: gateway(root),
        BARE_NAME: lambda: Process(
            [sys.executable, "-c", BARE_SERVER, str(model), str(bare_port)], bare_port
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # interleaved, so a change in machine load hits both alike
        for name, start in commands.items():
            server = start()
            try:
                times[name].append(server.wait_serving())
            finally:
                server.stop()
    for name, values in times.items():
        results[name] = {
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "max_s": round(max(values), 3),
        }
    results["ratio_to_bare"] = round(
        results["edge-server"]["median_s"] / results[BARE_NAME]["median_s"], 2
    )
    results["within_goal"] = results["edge-server"]["median_s"] < COLD_START_GOAL_S
    return results


# --- install size --------------------------------------------------------------------------


def runtime_requirements() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_sizes(site: Path) -> dict[str, dict[str, Any]]:
    """Bytes on disk per distribution, from the files its RECORD lists."""
    sizes: dict[str, dict[str, Any]] = {}
    for record in site.glob("*.dist-info/RECORD"):
        name, version = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)
        total = 0
        for line in record.read_text(encoding="utf-8").splitlines():
            path = site / line.split(",", 1)[0]
            if path.is_file() and ".." not in Path(line.split(",", 1)[0]).parts:
                total += path.stat().st_size
        sizes[canonical(name)] = {"version": version, "installed": total}
    return sizes


def wheel_sizes(folder: Path) -> dict[str, int]:
    return {canonical(w.name.split("-", 1)[0]): w.stat().st_size for w in folder.glob("*.whl")}


def install_size() -> dict[str, Any]:
    requirements = runtime_requirements()
    direct = {canonical(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    pins = ["--only-binary=:all:", "-c", str(REPO / "constraints.txt")]
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        wheels, site = Path(tmp) / "wheels", Path(tmp) / "site"
        download = [*pip, "download", *pins, "-d", str(wheels), *requirements]
        subprocess.run(download, check=True, capture_output=True)
        local = ["--no-index", "--find-links", str(wheels), "--target", str(site)]
        subprocess.run(
            [*pip, "install", *local, *pins, *requirements], check=True, capture_output=True
        )
        x86 = installed_sizes(site)
        x86_wheels = wheel_sizes(wheels)
    arm = installed_sizes(ARM64_SITE) if ARM64_SITE.is_dir() else {}
    arm_wheels = wheel_sizes(ARM64_WHEELS) if ARM64_WHEELS.is_dir() else {}
    rows = []
    for name, info in sorted(x86.items(), key=lambda item: -item[1]["installed"]):
        rows.append(
            {
                "package": name,
                "version": info["version"],
                "required_by": "gateway" if name in direct else "transitive",
                "x86_64_wheel_mib": mib(x86_wheels.get(name, 0)),
                "x86_64_installed_mib": mib(info["installed"]),
                "aarch64_wheel_mib": mib(arm_wheels[name]) if name in arm_wheels else None,
                "aarch64_installed_mib": mib(arm[name]["installed"]) if name in arm else None,
            }
        )
    return {
        "packages": rows,
        "x86_64_installed_total_mib": mib(sum(i["installed"] for i in x86.values())),
        "aarch64_installed_total_mib": mib(sum(v["installed"] for k, v in arm.items() if k in x86))
        if arm
        else None,
    }


# --- report --------------------------------------------------------------------------------


def dash(value: object) -> str:
    return "-" if value is None else str(value)


def markdown(report: dict[str, Any]) -> str:
    memory = report["memory"]
    rows = [
        ("bare interpreter, peak", "bare_interpreter_hwm_mib"),
        ("interpreter + `import edge_server.app`, peak", "import_gateway_hwm_mib"),
        ("bare ORT process: after `import onnxruntime`", "ort_import_rss_mib"),
        ("bare ORT session process, 1,000 runs, peak", "ort_session_process_hwm_mib"),
        ("ORT session cost (session process - bare interpreter)", "ort_session_cost_mib"),
        ("gateway at SERVING, peak", "gateway_serving_hwm_mib"),
        ("gateway after 1,000 Predict, peak", "gateway_1k_hwm_mib"),
        ("gateway after 2,000 Predict, peak", "gateway_2k_hwm_mib"),
        ("gateway RSS growth 1,000 -> 2,000 Predict", "gateway_rss_growth_1k_to_2k_mib"),
        ("gateway overhead (peak - ORT session cost; goal <= 60)", "gateway_overhead_mib"),
        ("budget: ORT session cost + 60", "budget_mib"),
    ]
    out = ["| Memory (MiB) | " + " | ".join(m["model"] for m in memory) + " |",
           "|---|" + "---:|" * len(memory)]  # fmt: skip
    for label, key in rows:
        out.append(f"| {label} | " + " | ".join(str(m.get(key, "-")) for m in memory) + " |")
    out.append("| within budget | " + " | ".join(str(m["within_budget"]) for m in memory) + " |")
    out += [f"- {m['model']}: {m['note']}" for m in memory]
    out += [f"- {note}" for note in report["notes"]]
    start = report["cold_start"]
    out += [
        "",
        "| Cold start to grpc.health SERVING (demo model, 5 runs) | median s | min s | max s |",
        "|---|---:|---:|---:|",
    ]
    for name, row in start.items():
        if isinstance(row, dict):
            out.append(f"| {name} | {row['median_s']} | {row['min_s']} | {row['max_s']} |")
    machine = report["machine"]
    out.append(
        f"- goal < {COLD_START_GOAL_S} s: {'met' if start['within_goal'] else 'MISSED'}; "
        f"edge-server / bare = {start['ratio_to_bare']}; load average "
        f"{machine['loadavg'][0]:.2f} before, {machine['loadavg_after'][0]:.2f} after "
        f"({machine['cpus']} CPUs)"
    )
    size = report["install_size"]
    out += [
        "",
        "| Runtime install (MiB) | version | via | x86_64 wheel | x86_64 installed "
        "| aarch64 wheel | aarch64 installed |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in size["packages"]:
        out.append(
            f"| {r['package']} | {r['version']} | {r['required_by']} | {r['x86_64_wheel_mib']} | "
            f"{r['x86_64_installed_mib']} | {dash(r['aarch64_wheel_mib'])} | "
            f"{dash(r['aarch64_installed_mib'])} |"
        )
    out.append(
        f"| **total** | | | | {size['x86_64_installed_total_mib']} | | "
        f"{dash(size['aarch64_installed_total_mib'])} |"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--skip-mobilenet", action="store_true", help="digits demo row only")
    parser.add_argument("--out", type=Path, default=RESULTS / "footprint.json")
    args = parser.parse_args(argv)
    digits_root, digits_image, digits_note = demo_model()
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                          "loadavg": os.getloadavg()}, "notes": []}  # fmt: skip
    report["memory"] = [memory_row("digits (demo)", digits_root, digits_image, digits_note)]
    mobilenet = "skipped: --skip-mobilenet" if args.skip_mobilenet else mobilenet_int8()
    if isinstance(mobilenet, str):
        report["notes"].append(f"MobileNetV2 INT8 row {mobilenet}")
    else:
        report["memory"].append(memory_row("mobilenet_v2 INT8", *mobilenet))
    report["cold_start"] = cold_start(digits_root)
    report["install_size"] = install_size()
    report["machine"]["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown(report))
    print(f"\nwritten: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
