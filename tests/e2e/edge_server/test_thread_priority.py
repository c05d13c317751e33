"""Decode, inference and model-loading threads run below the event loop (Linux nice),
and ONNX Runtime's own intra-op threads inherit that from the thread that built the
session: the event loop that admits and refuses calls is served first under overload."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_server.runtime.priority import worker_pool
from edge_server.settings import Settings
from tests.support.model_factory import linear_classifier

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux only")


def nice_of(thread_id: int) -> int:
    stat = Path(f"/proc/self/task/{thread_id}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_pool_threads_run_below_the_caller() -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with worker_pool(2, "inference", 5) as pool:
        seen = {pool.submit(threading.get_native_id).result() for _ in range(8)}
        assert {nice_of(tid) for tid in seen} == {min(19, base + 5)}
    with worker_pool(1, "inference", 0) as pool:
        assert nice_of(pool.submit(threading.get_native_id).result()) == base


# Run in a fresh interpreter: in the test process other tests' threads (gRPC, pools)
# come and go, so "threads that appeared meanwhile" would not all be ONNX Runtime's.
INHERIT_CHECK = """
import os, sys, threading
import onnxruntime as ort
from edge_server.runtime.priority import worker_pool

def nice(tid):
    with open(f"/proc/self/task/{tid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[16])

def build():
    options = ort.SessionOptions()
    options.intra_op_num_threads = 3  # two pool threads besides the caller
    return ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])

before = set(os.listdir("/proc/self/task"))
with worker_pool(1, "background", 7) as pool:
    session = pool.submit(build).result()
started = set(os.listdir("/proc/self/task")) - before  # the pool's own thread has exited
print(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), *sorted(nice(t) for t in started))
"""


def test_onnx_runtime_threads_inherit_the_lower_priority(tmp_path: Path) -> None:
    model = linear_classifier(tmp_path / "model.onnx", seed=1)
    done = subprocess.run(
        [sys.executable, "-c", INHERIT_CHECK, str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    base, *threads = (int(value) for value in done.stdout.split())
    assert threads, "ONNX Runtime started no intra-op threads"
    assert set(threads) == {min(19, base + 7)}


def test_nice_setting_is_bounded() -> None:
    assert Settings().runtime.worker_thread_nice == 5
    with pytest.raises(ValueError, match=r"worker_thread_nice must be 0\.\.19"):
        Settings.from_values(worker_thread_nice=20)
