"""A real `edge-server` serving the shipped digits models, for the HTTP face's tests.

The models are the trained demo CNN (FP32 and static INT8) from examples/models, so a
shipped image of a 3 is answered with class 3; the gateway has a management token and a
small message limit (the HTTP body limit too), so 401/403 and 413 are cheap to reach.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import REPO
from tests.support.processes import ServerProcess

MODELS = REPO / "examples" / "models"
IMAGES = REPO / "examples" / "images"
DIGIT_3 = IMAGES / "digit_3_705.png"
TOKEN = "http-face-test-token"
MAX_MESSAGE_BYTES = 256 * 1024


def copy_models(folder: Path) -> Path:
    root = folder / "models"
    shutil.copytree(MODELS, root)
    return root


def wait_http_ready(url: str, timeout: float = 30.0) -> None:
    """Until ``url`` (a readiness route) answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@contextmanager
def http_gateway(folder: Path, *flags: str) -> Iterator[ServerProcess]:
    """The gateway on free ports, serving; stopped (by PID) on exit."""
    server = ServerProcess(
        ["--model-root", str(copy_models(folder)), "--management-token", TOKEN,
         "--max-message-bytes", str(MAX_MESSAGE_BYTES), *flags]
    )  # fmt: skip
    try:
        server.wait_serving()
        yield server
    finally:
        if server.terminate() != 0:
            server.kill()
