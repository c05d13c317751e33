"""Many pull-mode Subscribe streams from one asyncio process, to measure what an idle
fleet costs an orchestrator and how fast an assign reaches it.

``python -m tests.support.fleet_load --streams 2000`` starts a real ``edge-orchestrator
serve`` (SQLite, or ``--postgres URL``), opens the streams, then prints JSON: seconds to
subscribe all, orchestrator CPU (cores) and RSS over an idle window, and assign-to-99 %
and assign-to-all seconds. The bench fleet simulator (benchmarks/fleet/) goes further.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.gateway_identity import enroll_async

# serve options that let a whole simulated fleet enroll at once
ENROLL_FREELY = ("--enroll-rate-per-second", "100000", "--enroll-burst", "100000")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class StreamFleet:
    """Subscribe streams over a few channels; what each gateway was last told."""

    target: str
    streams_per_channel: int = 200
    desired: dict[str, dict[str, str]] = field(default_factory=dict)
    first_at: dict[str, float] = field(default_factory=dict)
    messages: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # ended calls by status code
    _channels: list[grpc.aio.Channel] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _stub(self, index: int) -> orchestrator_pb2_grpc.OrchestratorServiceStub:
        channel_index = index // self.streams_per_channel
        while len(self._channels) <= channel_index:
            # A channel of its own per group: gRPC would otherwise share one connection.
            self._channels.append(
                grpc.aio.insecure_channel(
                    self.target, options=[("grpc.channel_id", len(self._channels))]
                )
            )
        return orchestrator_pb2_grpc.OrchestratorServiceStub(self._channels[channel_index])

    def open(self, gateway_ids: list[str], labels: dict[str, str] | None = None) -> None:
        start = len(self._tasks)
        for offset, gateway_id in enumerate(gateway_ids):
            stub = self._stub(start + offset)
            self._tasks.append(asyncio.create_task(self._follow(stub, gateway_id, labels or {})))

    async def _follow(
        self,
        stub: orchestrator_pb2_grpc.OrchestratorServiceStub,
        gateway_id: str,
        labels: dict[str, str],
    ) -> None:
        request = orchestrator_pb2.SubscribeRequest(
            gateway_id=gateway_id, labels=labels, gateway_version="load"
        )
        try:
            # Each gateway has its own credential (cloud_orchestrator/grpc/auth.py).
            metadata = await enroll_async(stub, gateway_id)
            async for reply in stub.Subscribe(request, metadata=metadata):
                self.messages += 1
                self.first_at.setdefault(gateway_id, time.monotonic())
                if reply.HasField("desired"):
                    self.desired[gateway_id] = {
                        m.model_name: m.model_version for m in reply.desired.models
                    }
                    self._changed.set()
        except grpc.aio.AioRpcError as error:
            key = f"{error.code().name}: {error.details()}"[:120]
            self.errors[key] = self.errors.get(key, 0) + 1
        except asyncio.CancelledError:
            pass

    async def wait_until(self, predicate: Callable[[StreamFleet], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
        return True

    def count_running(self, model: str, version: str) -> int:
        return sum(1 for d in self.desired.values() if d.get(model) == version)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for channel in self._channels:
            await channel.close()


async def measure(
    target: str,
    pid: int,
    streams: int,
    idle_seconds: float,
    assign: Callable[[], Any],
    model: str,
    version: str,
) -> dict[str, Any]:
    """Subscribe ``streams`` gateways, watch them idle, then time ``assign`` reaching them."""
    fleet = StreamFleet(target)
    ids = [f"load-{i:05d}" for i in range(streams)]
    started = time.monotonic()
    fleet.open(ids, {"site": "load"})
    subscribed = await fleet.wait_until(lambda f: len(f.first_at) >= streams, 300)
    subscribe_seconds = time.monotonic() - started
    await asyncio.sleep(3)  # let the subscribe burst settle
    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(idle_seconds)
    idle_cores = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    rss = rss_bytes(pid)
    assigned_at = time.monotonic()
    await asyncio.to_thread(assign)
    assign_call = time.monotonic() - assigned_at
    reach: dict[str, float | None] = {"p99": None, "all": None}
    for key, share in (("p99", 0.99), ("all", 1.0)):
        needed = int(streams * share)

        def told(f: StreamFleet, n: int = needed) -> bool:
            return f.count_running(model, version) >= n

        if await fleet.wait_until(told, 60):
            reach[key] = round(time.monotonic() - assigned_at, 3)
    await fleet.close()
    return {
        "streams": streams,
        "subscribed_all": subscribed,
        "subscribe_seconds": round(subscribe_seconds, 2),
        "idle_cores": round(idle_cores, 4),
        "rss_mib": round(rss / 2**20, 1),
        "assign_call_seconds": round(assign_call, 3),
        "assign_to_p99_seconds": reach["p99"],
        "assign_to_all_seconds": reach["all"],
    }


def main() -> None:
    from cloud_orchestrator.app import Orchestrator
    from tests.support.bundles import make_keys
    from tests.support.orchestrator import OrchestratorProcess, Publisher, cli

    parser = argparse.ArgumentParser(prog="python -m tests.support.fleet_load")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--postgres", default="", help="database URL (default: SQLite)")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra serve option")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-load-") as folder:
        tmp = Path(folder)
        db = args.postgres or f"sqlite:///{tmp / 'orchestrator.db'}"
        artifacts = tmp / "artifacts"
        key, public = make_keys(tmp / "keys")
        bundle = Publisher(key, public, tmp / "bundles").gray_bundle("2", golden=False)
        cli("publish", str(bundle), "--trusted-keys", str(public), db=db, artifacts=artifacts)
        server = OrchestratorProcess(
            db, artifacts, "--no-rollouts", *ENROLL_FREELY, *args.serve_arg
        )
        try:
            # In this process, not the CLI: its start-up would be counted as propagation.
            writer = Orchestrator(db, artifacts)

            def assign() -> None:
                writer.fleet.assign("gray", "all", "2")

            result = asyncio.run(
                measure(
                    server.target,
                    server.proc.pid,
                    args.streams,
                    args.idle_seconds,
                    assign,
                    "gray",
                    "2",
                )
            )
        finally:
            server.terminate()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
