"""Fixtures for the orchestrator tests: a throwaway PostgreSQL server, database URLs
for both backends, signed bundles, in-process gateways and the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from benchmarks.fleet.postgres import ThrowawayPostgres
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.app import Gateway
from edge_server.settings import Settings
from tests.support.bundles import build_bundle, golden_for, make_keys
from tests.support.model_factory import GRAY_PREPROCESSING, linear_classifier

BIN = Path(sys.executable).parent
ORCHESTRATOR = str(BIN / "edge-orchestrator")
LISTENING = re.compile(r"orchestrator (\S+) listening: gRPC [^:]+:(\d+)")
PG_ENV = "EDGE_TEST_POSTGRES_URL"


# Not imported from conftest or tests.support.lifecycle: tests/e2e/model_tools has its own conftest,
# and whichever is imported last owns the module name `conftest`.
GRAY_MANIFEST: dict[str, Any] = {
    "preprocessing": GRAY_PREPROCESSING,
    "output_kind": "logits",
    "labels": [f"class-{i}" for i in range(10)],
}


def gray_png(value: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, "PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a PostgreSQL server for the session (started here unless given)."""
    given = os.environ.get(PG_ENV)
    if given:
        yield given
        return
    server = ThrowawayPostgres(max_connections=200, prefix="edge-pg-")
    try:
        yield server.url
    finally:
        server.stop()


def fresh_database(server_url: str) -> str:
    import psycopg

    name = f"edge_{uuid.uuid4().hex[:12]}"
    base = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty orchestrator database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orchestrator.db'}"
    return fresh_database(request.getfixturevalue("postgres_server"))


# -- bundles and keys ------------------------------------------------------------------------


@dataclass
class Publisher:
    key: Ed25519PrivateKey
    public_key: Path
    workdir: Path

    def gray_bundle(
        self, version: str, name: str = "gray", golden: bool = True, **manifest: Any
    ) -> Path:
        model = linear_classifier(
            self.workdir / f"src-{name}-{version}" / "model.onnx", seed=int(version) * 10
        )
        return build_bundle(
            self.workdir / f"{name}-{version}.edgebundle",
            model,
            name,
            version,
            self.key,
            {**GRAY_MANIFEST, **manifest},
            golden_for(model) if golden else None,
        )


@pytest.fixture
def publisher(tmp_path: Path) -> Publisher:
    key, public = make_keys(tmp_path / "keys")
    return Publisher(key, public, tmp_path / "bundles")


# -- the CLI ---------------------------------------------------------------------------------


def cli(
    *args: str, db: str, artifacts: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [ORCHESTRATOR, *args, "--db", db, "--artifacts", str(artifacts)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"edge-orchestrator {' '.join(args)} failed:\n{result.stderr}")
    return result


def cli_json(*args: str, db: str, artifacts: Path) -> Any:
    return json.loads(cli(*args, "--json", db=db, artifacts=artifacts).stdout)


async def acli(*args: str, db: str, artifacts: Path) -> subprocess.CompletedProcess[str]:
    """The CLI without blocking the event loop (in-process gateways keep answering)."""
    return await asyncio.to_thread(cli, *args, db=db, artifacts=artifacts, check=False)


class OrchestratorProcess:
    """``edge-orchestrator serve`` as a subprocess; its log is kept in ``log``."""

    def __init__(self, db: str, artifacts: Path, *extra: str, port: int = 0) -> None:
        command = [
            ORCHESTRATOR,
            "serve",
            "--db",
            db,
            "--artifacts",
            str(artifacts),
            "--port",
            str(port),
            "--log-level",
            "INFO",
            *extra,
        ]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.log: list[str] = []
        self.instance = ""
        self.port = 0
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60):
            self.kill()
            raise RuntimeError("edge-orchestrator serve did not start:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            match = LISTENING.search(line)
            if match:
                self.instance, self.port = match[1], int(match[2])
                self._ready.set()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(20)

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


# -- in-process gateways ---------------------------------------------------------------------


@dataclass
class Fleet:
    """Several real gateways in this process, each counting ModelUpdate sessions."""

    gateways: dict[str, Gateway] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def address(self, gateway_id: str) -> str:
        return f"127.0.0.1:{self.gateways[gateway_id].grpc_port}"

    async def serving_version(self, gateway_id: str, model: str = "gray") -> str:
        channel = self.channels[gateway_id]
        reply = await inference_pb2_grpc.InferenceServiceStub(channel).Predict(
            inference_pb2.PredictRequest(model_name=model, image=gray_png()), timeout=10
        )
        return str(reply.model_version)


def _count_sessions(fleet: Fleet, gateway_id: str, gateway: Gateway) -> None:
    updater = gateway.lifecycle.updater
    original = updater.session

    @contextlib.contextmanager
    def counted(header: Any) -> Iterator[Any]:
        fleet.sessions[gateway_id] = fleet.sessions.get(gateway_id, 0) + 1
        with original(header) as session:
            yield session

    updater.session = counted  # type: ignore[method-assign]


async def start_fleet(
    root: Path,
    ids: list[str],
    trusted: Path,
    untrusting: tuple[str, ...] = (),
    trust_root: Path | None = None,
    **overrides: Any,
) -> Fleet:
    """Gateways serving gray 1 (a model root each); ``untrusting`` ones reject every bundle.
    With ``trust_root`` they check keyrings and signed targets instead of ``trusted``;
    ``overrides``: more gateway settings by flat name."""
    fleet = Fleet()
    for gateway_id in ids:
        model_root = root / gateway_id
        linear_classifier(model_root / "gray" / "1" / "model.onnx", seed=10)
        (model_root / "gray" / "1" / "manifest.json").write_text(
            json.dumps({"name": "gray", "version": "1", **GRAY_MANIFEST})
        )
        keys = () if gateway_id in untrusting or trust_root else (trusted,)
        settings = Settings.from_values(
            model_root=model_root,
            host="127.0.0.1",
            grpc_port=0,
            http_port=0,
            gateway_id=gateway_id,
            default_model="gray",
            trusted_keys=keys,
            trust_root=trust_root,
            rollback_window_seconds=0,
            inference_workers=1,
            preprocess_workers=1,
            intra_op_threads=1,
            shutdown_grace_seconds=2.0,
            **overrides,
        )
        gateway = Gateway(settings)
        await gateway.start()
        await gateway.wait_for_models()
        _count_sessions(fleet, gateway_id, gateway)
        fleet.gateways[gateway_id] = gateway
        fleet.channels[gateway_id] = grpc.aio.insecure_channel(fleet.address(gateway_id))
    return fleet


async def stop_fleet(fleet: Fleet) -> None:
    for channel in fleet.channels.values():
        await channel.close()
    await asyncio.gather(*(g.stop() for g in fleet.gateways.values()))


@contextlib.asynccontextmanager
async def running_fleet(
    root: Path,
    ids: list[str],
    trusted: Path,
    untrusting: tuple[str, ...] = (),
    trust_root: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[Fleet]:
    fleet = await start_fleet(root, ids, trusted, untrusting, trust_root, **overrides)
    try:
        yield fleet
    finally:
        await stop_fleet(fleet)


async def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:g} s")
        await asyncio.sleep(interval)


def until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Blocking variant of ``wait_for`` for tests whose gateways run in subprocesses."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:g} s")
        time.sleep(interval)


async def deploy(db: str, artifacts: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`edge-orchestrator deploy gray ARGS --json`: exit code and the JSON it printed."""
    result = await acli("deploy", "gray", *args, "--json", db=db, artifacts=artifacts)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)
