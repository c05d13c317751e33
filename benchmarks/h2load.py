"""Drive gRPC with h2load (nghttp2): the closed-loop load generator of choice.

h2load is a C program: it loads 2 cores far less than a Python client would, so more
of the machine is left to the gateway. A gRPC call is an HTTP/2 POST of the 5-byte
length prefix plus the serialized request with ``content-type: application/grpc``
and ``te: trailers``. h2load counts a failed gRPC call as a success (HTTP 200, the
status is in the trailers), so this module only reports what h2load saw; the caller
(benchmarks/verified_cell.py) checks real success against the gateway's per-status counters and the
DATA bytes received.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data")
_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")


def binary() -> str | None:
    return shutil.which("h2load")


@dataclass(frozen=True)
class H2Result:
    """What h2load reports for the measured period (byte counters include warm-up)."""

    done: int
    succeeded: int
    failed: int  # failed + errored + timeout
    status_2xx: int
    data_bytes: int
    throughput_rps: float
    latencies_ms: np.ndarray  # per request of the measured period, from --log-file


def run(
    target: str,
    path: str,
    frame: bytes,
    concurrency: int,
    duration: float,
    warmup: float,
    scratch: Path,
    streams_per_client: int = 1,
    rps_per_client: float | None = None,
    timeout: float | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> H2Result:
    """Closed loop: ``concurrency`` connections, each with ``streams_per_client`` calls
    in flight; with ``rps_per_client`` each connection paces its requests instead."""
    exe = binary()
    if exe is None:
        raise FileNotFoundError("h2load is not installed (Debian package nghttp2-client)")
    scratch.mkdir(parents=True, exist_ok=True)
    data_file = scratch / "h2load-request.bin"
    data_file.write_bytes(frame)
    log_file = scratch / "h2load-log.tsv"
    log_file.unlink(missing_ok=True)
    command = [
        exe,
        f"http://{target}{path}",
        "-d",
        str(data_file),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-c",
        str(concurrency),
        "-m",
        str(streams_per_client),
        "-t",
        "1",
        "-D",
        f"{round(duration * 1000)}ms",
        "--warm-up-time",
        f"{round(warmup * 1000)}ms",
        f"--log-file={log_file}",
    ]
    if rps_per_client is not None:
        command += ["--rps", f"{rps_per_client:g}"]
    for key, value in headers:
        command += ["-H", f"{key}: {value}"]
    output = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout or duration + warmup + 60,
    )
    text = output.stdout
    requests = _REQUESTS.search(text)
    status = _STATUS.search(text)
    traffic = _TRAFFIC.search(text)
    finished = _FINISHED.search(text)
    if output.returncode != 0 or not (requests and status and traffic and finished):
        raise RuntimeError(f"h2load failed ({output.returncode}): {text[-800:]}{output.stderr}")
    latencies = _latencies_ms(log_file)
    log_file.unlink(missing_ok=True)
    return H2Result(
        done=int(requests[3]),
        succeeded=int(requests[4]),
        failed=int(requests[5]) + int(requests[6]) + int(requests[7]),
        status_2xx=int(status[1]),
        data_bytes=int(traffic[3]),
        throughput_rps=float(finished[3]),
        latencies_ms=latencies,
    )


def _latencies_ms(log_file: Path) -> np.ndarray:
    """Third column of h2load's per-request log: microseconds to the end of the response."""
    if not log_file.exists() or log_file.stat().st_size == 0:
        return np.zeros(0)
    table = np.loadtxt(log_file, dtype=np.int64, ndmin=2, usecols=(2,))
    return np.sort(table[:, 0].astype(np.float64) / 1000.0)
