"""The [cloud] virtualenv's fleet console: `edge-orchestrator serve --http-port` from the
installed wheel serves its pages and static files (package data) and the JSON API to an
operator created with `operators add`, with the registry the cloud steps filled."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import urllib.error
import urllib.request

from tests.installed.commands import expect, ok_json
from tests.installed.workspace import Workspace, clean_env

START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def console(ws: Workspace) -> str:
    script = ws.venvs["cloud"].script("edge-orchestrator")
    added = ok_json([script, "operators", "add", "wheel-admin", "--role", "admin", "--json"])
    port = _free_port()
    serve = subprocess.Popen(
        [script, "serve", "--port", "0", "--http-port", str(port), "--no-rollouts"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )  # fmt: skip
    ready = threading.Event()
    log: list[str] = []

    def read() -> None:
        assert serve.stderr is not None
        for line in serve.stderr:
            log.append(line)
            if re.search(r"console listening: http://127\.0\.0\.1:\d+/", line):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        expect(ready.wait(START_TIMEOUT), "serve --http-port never logged 'console listening'")
        base = f"http://127.0.0.1:{port}"
        status, body = _get(f"{base}/static/console.js")
        expect(status == 200 and b"X-CSRF-Token" in body, f"/static/console.js: {status}")
        status, body = _get(f"{base}/api/v1/gateways")
        expect(status == 401, f"/api/v1/gateways without a token answered {status}")
        status, body = _get(f"{base}/api/v1/gateways", str(added["token"]))
        fleet = json.loads(body)
        expect(status == 200 and fleet["counts"]["total"] >= 1, f"/api/v1/gateways: {body!r}")
        status, page = _get(f"{base}/login")
        expect(status == 200 and b'name="token"' in page, f"/login answered {status}")
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(30)
    expect(code == 0, f"serve exited {code} on SIGTERM:\n{''.join(log)[-2000:]}")
    total = fleet["counts"]["total"]
    return f"console on :{port}: static files, 401 without a token, {total} gateways"
