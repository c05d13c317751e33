"""Peak memory of the gateway beside what ONNX Runtime alone costs with the same model.

The gateway's VmHWM is read at SERVING, after 1,000 and after 2,000 sequential image
Predicts (growth between the last two shows unbounded caches). Reference processes
run in the same call: a bare interpreter, one that only imports the gateway, and a
bare ONNX Runtime session with the same model and threads. Budget: gateway peak <=
ORT session cost (session process - bare interpreter) + ``BUDGET_MIB``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc

from benchmarks.cpu_accounting import rss_mb
from benchmarks.footprint.server_processes import FAST_RECONNECT, gateway
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc

MIB = 1024 * 1024
BUDGET_MIB = 60.0  # for Python, gRPC and our code on top of the ONNX Runtime session

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


def mib(value: float) -> float:
    """Bytes -> MiB, rounded as the report prints them."""
    return round(value / MIB, 2)


def memory_of(pid: int) -> dict[str, int]:
    """Peak (VmHWM) and current (VmRSS) resident set of ``pid``, in bytes."""
    # rss_mb is KiB / 1024, exact in a float, so this gives back the kernel's byte count.
    return {key: round(rss_mb(pid, key) * MIB) for key in ("VmHWM", "VmRSS")}


def child_json(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last stdout line is the JSON result."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def predicts(target: str, image: bytes, count: int) -> None:
    """``count`` sequential image Predicts, one at a time, as a single client sends them."""
    with grpc.insecure_channel(target, options=FAST_RECONNECT) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        request = inference_pb2.PredictRequest(image=image, top_k=3)
        for _ in range(count):
            stub.Predict(request, timeout=30)


def memory_row(name: str, root: Path, image: bytes, note: str) -> dict[str, Any]:
    """One column of the memory table: the gateway serving ``root`` and its references."""
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
