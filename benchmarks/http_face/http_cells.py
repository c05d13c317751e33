"""HTTP cells: wrk uploads to a server's ``/predict``, after one checked answer.

The Flask baseline and the gateway's HTTP face get the same multipart body from the same
wrk script at the same connection count. Before each cell one upload is sent by hand and
its JSON must name a class: an HTTP 200 that is not an answer would otherwise count.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.cpu_accounting import CpuMeter
from benchmarks.http_face import wrk
from benchmarks.http_face.cases import Case
from benchmarks.server_processes import ListeningProcess


class FlaskProcess(ListeningProcess):
    """benchmarks/http_face/flask_baseline.py as a child process (``url``: its /predict)."""

    def __init__(self, model_dir: Path) -> None:
        # Werkzeug logs every request on stderr.
        args = ["--model-dir", str(model_dir)]
        super().__init__("benchmarks.http_face.flask_baseline", args, quiet=True)


def post_once(url: str, case: Case, timeout: float = 60.0) -> tuple[int, Any]:
    """One multipart upload: (HTTP status, parsed JSON body or the raw text)."""
    body = wrk.multipart_body(case.picture, case.filename, case.content_type)
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": wrk.content_type_header()}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, text = answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def answers(url: str, case: Case) -> bool:
    """Whether ``url`` answers this upload with a class (the gateway or Flask shape)."""
    status, body = post_once(url, case)
    return status == 200 and isinstance(body, dict) and _names_a_class(body)


def _names_a_class(body: dict[str, Any]) -> bool:
    if "class_id" in body or "label" in body:
        return True
    nested = [v for v in body.values() if isinstance(v, dict)]
    return any(_names_a_class(v) for v in nested)


def measure(
    url: str, case: Case, pids: list[int], clients: int, duration: float, scratch: Path
) -> dict[str, Any]:
    """One wrk cell (after a warm-up of 1 s) with the server's CPU and its checks."""
    script = wrk.write_script(case.write(scratch), case.content_type, scratch)
    checks = [] if answers(url, case) else ["the probe upload got no class back"]
    wrk.run(url, script, clients, 1.0)  # warm-up: connections, caches, first batches
    meter = CpuMeter(pids)
    result = wrk.run(url, script, clients, duration)
    cpu = meter.stop()
    if result.failed:
        checks.append(f"wrk: {result.failed} failed of {result.requests}")
    return {
        "protocol": "http",
        "generator": "wrk",
        "concurrency": clients,
        "requests": result.requests,
        "throughput_rps": result.throughput_rps,
        **{f"{k}_ms": v for k, v in result.latency_ms.items()},
        "verified": not checks,
        "checks": checks,
        "cpu": cpu.to_dict(),
    }
