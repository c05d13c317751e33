"""wrk (Debian package `wrk`) posting one picture as a multipart upload, parsed.

The Lua script reads the picture and builds the ``multipart/form-data`` body once
(field ``image``), as a phone app or ``curl -F image=@photo.jpg`` sends it; wrk then
posts it over ``connections`` keep-alive connections. Failed answers are what wrk
reports as non-2xx responses and socket errors; the caller checks one answer by hand
first (an HTTP 200 that is not an answer would otherwise count).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

BOUNDARY = "edge-bench-7d1f0c"
LUA = """-- built by benchmarks/http_face/wrk.py
local file = assert(io.open("{image}", "rb"))
local picture = file:read("*a")
file:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"
wrk.body = "--{boundary}\\r\\n"
  .. 'Content-Disposition: form-data; name="image"; filename="{filename}"\\r\\n'
  .. "Content-Type: {content_type}\\r\\n\\r\\n"
  .. picture
  .. "\\r\\n--{boundary}--\\r\\n"
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    throughput_rps: float
    failed: int  # non-2xx answers and socket errors
    latency_ms: dict[str, float]  # p50, p90, p99


def binary() -> str | None:
    return shutil.which("wrk")


def multipart_body(picture: bytes, filename: str, content_type: str) -> bytes:
    """The body the Lua script builds (for the probe before a run)."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + picture + f"\r\n--{BOUNDARY}--\r\n".encode()


def content_type_header() -> str:
    return f"multipart/form-data; boundary={BOUNDARY}"


def write_script(picture: Path, content_type: str, scratch: Path) -> Path:
    script = scratch / f"upload-{picture.stem}.lua"
    script.write_text(
        LUA.format(
            image=picture.resolve(),
            boundary=BOUNDARY,
            filename=picture.name,
            content_type=content_type,
        )
    )
    return script


def run(url: str, script: Path, connections: int, duration: float, threads: int = 2) -> WrkResult:
    out = subprocess.run(
        [
            str(binary()),
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "--timeout",
            "30s",  # a slow answer is slow, not failed (wrk's default gives up at 2 s)
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    return parse(out)


def parse(text: str) -> WrkResult:
    requests = int(_find(r"(\d+) requests in", text))
    rate = float(_find(r"Requests/sec:\s+([\d.]+)", text))
    failed = int(_find(r"Non-2xx or 3xx responses: (\d+)", text, "0"))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    if errors:
        failed += sum(int(n) for n in errors.groups())
    latency = {
        f"p{pct}": _ms(m[1], m[2])
        for pct in (50, 90, 99)
        if (m := re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\b", text, re.M))
    }
    return WrkResult(requests, rate, failed, latency)


def _find(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match is None:
        if default is not None:
            return default
        raise ValueError(f"wrk output without {pattern!r}:\n{text}")
    return match[1]


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]
