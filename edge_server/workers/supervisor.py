"""Primary side: start the replicas, keep them running and following, stop them.

Each replica is ``python -m edge_server.workers.replica`` with the primary's resolved
settings (same model root, same gRPC and HTTP ports, bound with SO_REUSEPORT; it never
binds the management port) and the primary's private folder (private_folder.py): it
relays there what only the primary answers, and serves its own /metrics page there for
the primary to merge. The kernel spreads new connections across every process listening
on a port. A
replica that dies is restarted with a growing pause; a replica whose primary dies sees
its stdin close and shuts itself down, so no orphan keeps serving a stale model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_server.catalogue.serving import ModelSlot, ServingCatalogue
from edge_server.settings import Settings, settings_to_json
from edge_server.workers.control import Followed, Hello, ModelEvent
from edge_server.workers.private_folder import PrivateFolder

logger = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 60.0
# Longest a management answer waits for the replicas to load what the primary activated;
# beyond it the answer goes out and the late replica is logged.
FOLLOW_TIMEOUT_S = 120.0
METRICS_TIMEOUT_S = 2.0
MAX_RESTART_PAUSE_S = 30.0


def event_for(slot: ModelSlot, seq: int = 0) -> ModelEvent:
    version = slot.active.version if slot.active is not None else ""
    return ModelEvent(slot.name, version, slot.state.name, seq)


@dataclass
class Replica:
    index: int
    process: asyncio.subprocess.Process | None = None
    hello: Hello | None = None
    followed: int = 0  # the last event number it reported applied
    restarts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class WorkerSupervisor:
    def __init__(
        self,
        settings: Settings,
        ports: tuple[int, int],
        models: ServingCatalogue,
        folder: PrivateFolder,
        on_restart: Callable[[int], None] = lambda _index: None,
    ) -> None:
        """``ports``: the (gRPC, HTTP) ports the primary bound, which the replicas join."""
        self._models = models
        self._folder = folder
        self._on_restart = on_restart
        self._replicas = [Replica(i) for i in range(1, settings.effective_workers)]
        self._stopping = False
        self._seq = 0
        self._progress = asyncio.Condition()
        # The replicas' settings: the primary's, resolved, with the ports it really bound.
        replica_settings = settings_to_json(settings)
        replica_settings.update(grpc_port=ports[0], http_port=ports[1])
        handle, name = tempfile.mkstemp(prefix="edge-replica-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(replica_settings, out)
        self._config = Path(name)
        models.add_listener(self._broadcast)

    @property
    def replicas(self) -> list[Replica]:
        return list(self._replicas)

    async def start(self) -> None:
        for replica in self._replicas:
            replica.task = asyncio.create_task(self._keep_running(replica))

    def _broadcast(self, slot: ModelSlot) -> None:
        self._seq += 1
        line = event_for(slot, self._seq).encode()
        for replica in self._replicas:
            self._send(replica, line)

    def _send(self, replica: Replica, line: bytes) -> None:
        process = replica.process
        if process is None or process.stdin is None or process.returncode is not None:
            return  # it gets a full snapshot when it (re)starts
        with contextlib.suppress(ConnectionError, RuntimeError):
            process.stdin.write(line)

    async def _spawn(self, replica: Replica) -> asyncio.subprocess.Process:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge_server.workers.replica",
            str(self._config),
            str(replica.index),
            str(self._folder.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        replica.process = process
        # The snapshot goes first: the replica applies it after its own start-up load.
        replica.followed = 0
        for slot in self._models.slots():
            self._send(replica, event_for(slot, self._seq).encode())
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), HELLO_TIMEOUT_S)
        if not line:
            raise RuntimeError("it exited before listening (see its log above)")
        replica.hello = Hello.decode(line)
        logger.info("worker %d (pid %d) is serving", replica.index, process.pid)
        return process

    async def _read_progress(self, replica: Replica, stdout: asyncio.StreamReader) -> None:
        """The replica's Followed lines, until it exits."""
        while line := await stdout.readline():
            try:
                replica.followed = Followed.decode(line).seq
            except (ValueError, KeyError) as exc:
                logger.error("worker %d sent a malformed line: %s", replica.index, exc)
                continue
            async with self._progress:
                self._progress.notify_all()
        replica.hello = None  # gone: no longer waited for
        async with self._progress:
            self._progress.notify_all()

    async def wait_followed(self, timeout: float = FOLLOW_TIMEOUT_S) -> None:
        """Until every serving replica applied every event sent so far (a management
        call's answer waits for it, so the next call on any connection sees the change)."""
        target = self._seq

        def behind() -> list[Replica]:
            return [
                r
                for r in self._replicas
                if r.hello is not None
                and r.process is not None
                and r.process.returncode is None
                and r.followed < target
            ]

        try:
            async with self._progress:
                await asyncio.wait_for(self._progress.wait_for(lambda: not behind()), timeout)
        except TimeoutError:
            late = ", ".join(str(r.index) for r in behind())
            logger.warning("worker(s) %s did not follow the primary within %.0f s", late, timeout)

    async def _keep_running(self, replica: Replica) -> None:
        pause = 1.0
        while not self._stopping:
            try:
                process = await self._spawn(replica)
                assert process.stdout is not None
                await self._read_progress(replica, process.stdout)
                await process.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error("worker %d failed to start: %s", replica.index, exc)
                if replica.process is not None and replica.process.returncode is None:
                    replica.process.kill()
                    await replica.process.wait()
            if self._stopping:
                return
            code = replica.process.returncode if replica.process is not None else None
            replica.hello = None
            replica.restarts += 1
            self._on_restart(replica.index)
            logger.error(
                "worker %d exited (code %s); restarting it in %.0f s", replica.index, code, pause
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_RESTART_PAUSE_S)

    async def metrics_pages(self) -> list[tuple[str, bytes]]:
        """Each live replica's /metrics page, labelled with its worker index."""

        async def fetch(replica: Replica) -> tuple[str, bytes] | None:
            if replica.hello is None:
                return None
            try:
                page = await asyncio.wait_for(
                    _http_get(self._folder.worker(replica.index), "/metrics"), METRICS_TIMEOUT_S
                )
            except (OSError, TimeoutError, ValueError) as exc:
                logger.warning("worker %d did not answer /metrics: %s", replica.index, exc)
                return None
            return str(replica.index), page

        pages = await asyncio.gather(*(fetch(r) for r in self._replicas))
        return [page for page in pages if page is not None]

    async def stop(self, grace: float) -> None:
        """SIGTERM every replica (each drains its calls), SIGKILL what outlives the grace."""
        self._stopping = True
        live = [r.process for r in self._replicas if r.process and r.process.returncode is None]
        for process in live:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in live:
            try:
                await asyncio.wait_for(process.wait(), grace + 5.0)
            except TimeoutError:
                logger.error("worker pid %d did not stop in time; killing it", process.pid)
                process.kill()
                await process.wait()
        for replica in self._replicas:
            if replica.task is not None:
                replica.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await replica.task
        self._config.unlink(missing_ok=True)


async def _http_get(socket: Path, path: str) -> bytes:
    """One GET over a unix socket (a replica's private endpoint), the body of a 200."""
    reader, writer = await asyncio.open_unix_connection(socket)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: worker\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head.split(b"\r\n", 1)[0].decode("latin-1"))
    return body
