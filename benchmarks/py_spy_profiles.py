"""Where the gateway's time goes under a cell's load: py-spy on the edge-server PID.

py-spy samples the running process from outside (no code change, small overhead).
Two recordings: every thread that is not idle, and only the thread holding the GIL
(``--gil --native``), which is the one that matters when Python is the bottleneck;
native frames show the time gRPC's Cython layer and its system calls spend holding
the GIL. Collapsed stacks are folded into "self" time (the innermost frame),
"inclusive" time per function and time per library ("category": the innermost
frame that belongs to a known library; libc calls count for their caller).
``profile_cell`` re-runs one benchmark cell on a fresh gateway while py-spy records.
"""

from __future__ import annotations

import collections
import functools
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import models, payloads, verified_cell
from benchmarks.server_processes import GatewayProcess

# Innermost frames that mean "waiting", not working: the event loop in epoll, idle pool
# threads, gRPC's poller thread blocked in C (Thread.run with nothing below it).
WAITS = ("EpollSelector.select (", "_worker (concurrent/futures/thread.py)", "Thread.run (")
CATEGORIES = (
    ("grpc (Cython + core)", ("grpc/", "libgrpc", "cygrpc")),
    ("gateway code", ("edge_server/", "edge/v1/", "inference/")),
    ("asyncio", ("asyncio/", "_asynciomodule", "selectors.py")),
    ("protobuf", ("google/protobuf", "_message.abi3", "upb")),
    ("numpy", ("numpy/",)),
    ("prometheus_client", ("prometheus_client/",)),
    ("onnxruntime", ("onnxruntime/", "libonnxruntime")),
    ("PIL", ("PIL/",)),
    ("concurrent.futures / threading", ("concurrent/futures", "threading.py")),
)
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match['func']} ({path})"


def category(frame: str) -> str | None:
    for name, markers in CATEGORIES:
        if any(marker in frame for marker in markers):
            return name
    return None


def fold(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's raw (collapsed) output."""
    self_counts: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    categories: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        # py-spy's first entries are process and thread labels.
        code = [_short(f) for f in frames if "(" in f and not f.startswith(("process", "thread"))]
        thread = next((f for f in frames if f.startswith("thread")), "thread ?")
        threads[re.sub(r"\s*\(.*", "", thread)] += count
        total += count
        if code and code[-1].startswith(WAITS):
            categories["waiting (epoll, idle threads, gRPC poller)"] += count
        else:
            categories[next((c for f in reversed(code) if (c := category(f))), "other")] += count
        if code:
            self_counts[_native(code[-1])] += count
            for name in {_native(f) for f in code}:
                inclusive[name] += count
    share = (lambda n: round(100.0 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "self": [(name, share(n)) for name, n in self_counts.most_common(top)],
        "inclusive": [(name, share(n)) for name, n in inclusive.most_common(top)],
        "threads": [(name, share(n)) for name, n in threads.most_common(8)],
        "categories": [(name, share(n)) for name, n in categories.most_common()],
    }


def _native(frame: str) -> str:
    """Unsymbolized native frames (0x7f... (lib.so)) grouped per library."""
    if frame.startswith("0x"):
        return "<native> " + frame.split(" ", 1)[-1]
    return frame


def record(pid: int, seconds: float, out: Path, gil_only: bool = False) -> dict[str, Any]:
    """Sample ``pid`` for ``seconds``; writes the collapsed stacks to ``out``."""
    exe = py_spy()
    if exe is None:
        return {"error": "py-spy is not installed (pip install py-spy)"}
    command = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        "250",
        "--format",
        "raw",
        "--output",
        str(out),
        "--threads",
    ]
    command += ["--gil", "--native"] if gil_only else ["--nonblocking"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0 or not out.exists():
        return {"error": f"py-spy failed: {done.stderr.strip()[-300:]}"}
    return fold(out.read_text())


def _into(box: dict[str, Any], function: Callable[..., dict[str, Any]], *arguments: Any) -> None:
    """Run ``function`` (in a thread) and keep its dict result in ``box``."""
    box.update(function(*arguments))


def profile_cell(
    root: Path,
    cell: tuple[str, str, str, int],
    gateway_flags: list[str],
    seconds: float,
    out: Path,
    generator: str,
) -> dict[str, Any]:
    """Re-run one cell (model, input, batching, clients) on a fresh gateway started with
    ``gateway_flags`` twice under py-spy: all busy threads, then the GIL holder only.
    Traces go to ``out``; the load runs a second longer than py-spy records."""
    name, kind, _batching, clients = cell
    payload = payloads.payload(models.MODELS[name], kind, root)
    result: dict[str, Any] = {}
    with GatewayProcess(root, gateway_flags) as gateway:
        for label, gil in (("all threads", False), ("GIL holder", True)):
            trace = out / f"profile-{name}-{kind}-{clients}-{int(gil)}.txt"
            holder: dict[str, Any] = {}
            row_box: dict[str, Any] = {}
            spy = threading.Thread(
                target=functools.partial(_into, holder, record, gateway.pid, seconds, trace, gil)
            )
            runner = threading.Thread(
                target=functools.partial(
                    _into,
                    row_box,
                    verified_cell.measure,
                    gateway,
                    payload,
                    clients,
                    seconds + 1.0,
                    0.5,
                    out / "scratch",
                    generator,
                )
            )
            runner.start()
            time.sleep(0.7)  # let the load reach its steady state before sampling
            spy.start()
            spy.join()
            runner.join()
            holder["throughput_rps_while_profiled"] = row_box.get("throughput_rps")
            result[label] = holder
    return result
