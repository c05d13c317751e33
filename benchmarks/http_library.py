"""Which asynchronous HTTP library serves the gateway's HTTP port: aiohttp or Starlette on uvicorn.

Both run on the gateway's own asyncio loop (aiohttp: ``web.AppRunner`` + ``TCPSite``;
Starlette: ``uvicorn.Server.serve()``). For each, in a fresh process that has already
imported what a gateway imports (grpc, onnxruntime, numpy, prometheus_client):

- import time of the library, and import plus listening (median of the rounds);
- RSS added: VmRSS after import, start and the load run minus VmRSS before the import;
- requests/s for a tiny JSON route, driven by h2load in HTTP/1.1 mode (``--h1``, a C
  client that loads the 2 cores far less than a Python one), closed loop.

    python -m benchmarks.http_library [--rounds 3] [--requests 20000] [--clients 16]

Prints one JSON document (medians per library, and ratios aiohttp / starlette).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

LIBRARIES = ("aiohttp", "starlette")
_RPS = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_DONE = re.compile(r"status codes: (\d+) 2xx")


def _rss_kb(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def _serve_aiohttp(port: int, ready: dict[str, Any]) -> None:
    started = time.perf_counter()
    from aiohttp import web

    ready["import_s"] = time.perf_counter() - started

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": "digits"})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ready["start_s"] = time.perf_counter() - started
    print(json.dumps(ready), flush=True)
    await asyncio.Event().wait()


async def _serve_starlette(port: int, ready: dict[str, Any]) -> None:
    started = time.perf_counter()
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    ready["import_s"] = time.perf_counter() - started

    async def hello(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": "digits"})

    app = Starlette(routes=[Route("/", hello)])
    # httptools (uvicorn[standard]'s parser) when installed, else h11; never uvloop:
    # grpc.aio needs the standard asyncio loop.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_level="error", loop="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  # uvicorn offers no event to wait on
        await asyncio.sleep(0.001)
    ready["start_s"] = time.perf_counter() - started
    print(json.dumps(ready), flush=True)
    await task


def serve(library: str, port: int) -> None:
    """Child: a gateway's imports, then the library on the running loop."""
    import grpc  # noqa: F401
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401
    import prometheus_client  # noqa: F401

    ready: dict[str, Any] = {"rss_before_kb": _rss_kb()}
    main = _serve_aiohttp if library == "aiohttp" else _serve_starlette
    asyncio.run(main(port, ready))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _round(library: str, requests: int, clients: int) -> dict[str, float]:
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.http_library", "--serve", library, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = json.loads(child.stdout.readline())
        h2load = shutil.which("h2load")
        if h2load is None:
            raise SystemExit("h2load is not installed (Debian package nghttp2-client)")
        out = subprocess.run(
            [
                h2load,
                "--h1",
                "-n",
                str(requests),
                "-c",
                str(clients),
                "-t",
                "1",
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
        rps, done = _RPS.search(out), _DONE.search(out)
        if rps is None or done is None or int(done.group(1)) != requests:
            raise RuntimeError(f"h2load did not complete every request:\n{out}")
        return {
            "import_ms": ready["import_s"] * 1000,
            "import_and_listen_ms": ready["start_s"] * 1000,
            "rss_added_mb": (_rss_kb(child.pid) - ready["rss_before_kb"]) / 1024,
            "requests_per_s": float(rps.group(1)),
        }
    finally:
        child.terminate()
        child.wait(10)


def measure(rounds: int, requests: int, clients: int) -> dict[str, Any]:
    cells: dict[str, list[dict[str, float]]] = {lib: [] for lib in LIBRARIES}
    for _ in range(rounds):  # interleaved: a noisy neighbour hits both alike
        for library in LIBRARIES:
            cells[library].append(_round(library, requests, clients))
    medians = {
        lib: {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}
        for lib, runs in cells.items()
    }
    a, s = medians["aiohttp"], medians["starlette"]
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "load": {"requests": requests, "clients": clients, "rounds": rounds},
        "median": medians,
        "ratio_aiohttp_over_starlette": {key: round(a[key] / s[key], 2) for key in a},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--serve", nargs=2, metavar=("LIBRARY", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    print(json.dumps(measure(args.rounds, args.requests, args.clients), indent=2))


if __name__ == "__main__":
    main()
