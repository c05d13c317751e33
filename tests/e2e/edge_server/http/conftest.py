"""One real gateway for the HTTP face's tests (each module's own where it needs flags)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http_gateway import http_gateway
from tests.support.processes import ServerProcess


@pytest.fixture(scope="package")
def server() -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory() as folder, http_gateway(Path(folder)) as running:
        yield running


@pytest.fixture(scope="package")
def base(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.http_port}"
