"""The console's Fleet page with 10,000 registered gateways: server time of GET
/api/v1/gateways (what the page fetches) for the first page, a page deep in the list, a
label selector and the drift filter, against a real `edge-orchestrator serve
--http-port`.

Gateways are written straight into the database (labels over 50 sites and 3 kinds of
hardware, each running a model version) with an assignment that leaves half of them
drifting, so counts and drift are computed over the whole fleet.

    python -m benchmarks.console_fleet [--gateways 10000] [--db URL] [--repeat 15]

Prints a Markdown table and writes bench-results/console-fleet.json. Medians of
``--repeat`` requests per query; ``server_ms`` is the handler's own time (the JSON's
``server_ms``), ``server_cpu_ms`` the CPU time of its thread (what the query costs when
other processes share the cores), ``round_trip_ms`` adds HTTP and JSON on loopback.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from cloud_orchestrator.console.operators import Operators
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Assignment, Gateway, GatewayModel

ORCHESTRATOR = str(Path(sys.executable).parent / "edge-orchestrator")
QUERIES = {
    "first page (50 of all)": "selector=all&page=1&per_page=50",
    "page 150 (of 200)": "selector=all&page=150&per_page=50",
    "selector site=s-07": "selector=site%3Ds-07&page=1&per_page=50",
    "drift only": "selector=all&drift=1&page=1&per_page=50",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def populate(db_url: str, count: int) -> str:
    """``count`` gateways, their running versions and one assignment; an admin token."""
    db = Database(db_url)
    now = time.time()
    gateways = [
        {
            "id": f"gw-{i:05d}",
            "address": f"10.0.{i // 250}.{i % 250}:50051" if i % 4 == 0 else "",
            "labels": {"site": f"s-{i % 50:02d}", "hardware": ("rpi4", "jetson", "x86")[i % 3]},
            "token": "",
            "ca_pem": "",
            "registered_at": now,
            "last_seen": now - (i % 300),  # a spread of online and offline
            "gateway_version": "1.0",
        }
        for i in range(count)
    ]
    running = [
        {
            "gateway_id": g["id"],
            "model_name": "gray",
            "active_version": "2" if i % 2 else "1",
            "state": "READY",
            "bundle_sha256": "",
            "updated_at": now,
        }
        for i, g in enumerate(gateways)
    ]
    with db.session() as session:
        session.execute(insert(Gateway), gateways)
        session.execute(insert(GatewayModel), running)
        session.add(
            Assignment(
                model_name="gray", selector="all", version="1", mode="ACTIVATE", created_at=now
            )
        )
    token = Operators(db).add("bench", "admin")
    db.dispose()
    return token


def _get(url: str, token: str) -> tuple[float, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        body = response.read()
    return (time.perf_counter() - started) * 1000, body


class Serve:
    def __init__(self, db_url: str, artifacts: Path, port: int) -> None:
        self.proc = subprocess.Popen(
            [ORCHESTRATOR, "serve", "--db", db_url, "--artifacts", str(artifacts),
             "--port", "0", "--http-port", str(port), "--no-rollouts", "--log-level", "INFO"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(60):
            self.stop()
            raise RuntimeError("edge-orchestrator serve did not start")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if re.search(r"orchestrator \S+ listening", line):
                self.ready.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


def measure(base: str, token: str, repeat: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, query in QUERIES.items():
        server, cpu, trip = [], [], []
        body: dict[str, Any] = {}
        for _ in range(repeat):
            elapsed, raw = _get(f"{base}/api/v1/gateways?{query}", token)
            body = json.loads(raw)
            server.append(body["server_ms"])
            cpu.append(body["server_cpu_ms"])
            trip.append(elapsed)
        results[name] = {
            "server_ms": statistics.median(server),
            "server_cpu_ms": statistics.median(cpu),
            "round_trip_ms": round(statistics.median(trip), 1),
            "matched": body["matched"],
            "counts": body["counts"],
            "json_bytes": len(raw),
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--db", default="", help="a fresh database URL (default: SQLite)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("bench-results/console-fleet.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="console-bench-") as folder:
        db_url = args.db or f"sqlite:///{folder}/orchestrator.db"
        started = time.perf_counter()
        token = populate(db_url, args.gateways)
        setup = time.perf_counter() - started
        port = _free_port()
        serve = Serve(db_url, Path(folder) / "artifacts", port)
        try:
            results = measure(f"http://127.0.0.1:{port}", token, args.repeat)
        finally:
            serve.stop()
    report = {
        "gateways": args.gateways,
        "database": "sqlite" if not args.db else args.db.split(":", 1)[0],
        "insert_seconds": round(setup, 1),
        "queries": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"Fleet API with {args.gateways} gateways ({report['database']}), median of "
          f"{args.repeat}:\n")  # fmt: skip
    print("| query | matched | server ms | server CPU ms | round trip ms | JSON bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        print(
            f"| {name} | {row['matched']} | {row['server_ms']} | {row['server_cpu_ms']} | "
            f"{row['round_trip_ms']} | "
            f"{row['json_bytes']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
