"""How many streams the simulator itself drives: its gateways against a stand-in
OrchestratorService that does nothing but answer Subscribe (one desired state, then
heartbeats from a timer) and ReportStatus (acknowledged, nothing stored), so the
orchestrator cannot be the limit.

``measure``: the subscribe and idle ceiling. ``measure_assign``: the assign floor, two
stand-ins (as two replicas) each told by SIGUSR1 to send a new version to all of its
streams at once; the simulator's gateways receive it, activate and report, exactly as
against the orchestrator. What the same machine, simulator and reports allow an assign
with no database and no orchestrator work at all.

``python -m benchmarks.fleet.ceiling --serve PORT`` is the stand-in; both measures run
the stand-ins and the simulator as child processes stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from benchmarks.fleet.postgres import free_port
from benchmarks.fleet.processes import proc_cpu_seconds, raise_nofile
from benchmarks.fleet.shards import SimulatorShards
from cloud_orchestrator.grpc.server import SERVER_OPTIONS
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc

__all__ = ["measure", "measure_assign"]


class _Standin(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    """Heartbeats from slots, as the orchestrator's wheel (fleet/heartbeats.py): a stream
    waits on its slot's event, which a ticker sets in turn and ``assign`` sets all at once
    (no timer per stream, no cancelled waits)."""

    SLOTS = 40

    def __init__(self, heartbeat: int) -> None:
        self._heartbeat = heartbeat
        self._assigned: tuple[str, str] | None = None  # (model, version) for every gateway
        self._slots = [asyncio.Event() for _ in range(self.SLOTS)]
        self._joined = 0

    def assign(self, model: str, version: str) -> None:
        """A new version for every gateway: all streams wake and send it."""
        self._assigned = (model, version)
        for slot in range(self.SLOTS):
            self._fire(slot)

    def _fire(self, slot: int) -> None:
        fired, self._slots[slot] = self._slots[slot], asyncio.Event()
        fired.set()

    async def tick(self) -> None:
        while True:
            for slot in range(self.SLOTS):
                await asyncio.sleep(self._heartbeat / self.SLOTS)
                self._fire(slot)

    def _desired(self, request: orchestrator_pb2.SubscribeRequest) -> orchestrator_pb2.DesiredState:
        desired = orchestrator_pb2.DesiredState(generation=1 if self._assigned is None else 2)
        for model in request.models:
            if self._assigned is None or model.model_name != self._assigned[0]:
                desired.models.add(model_name=model.model_name, model_version=model.active_version)
        if self._assigned is not None:
            desired.models.add(model_name=self._assigned[0], model_version=self._assigned[1])
        return desired

    async def Subscribe(
        self, request: orchestrator_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.SubscribeResponse]:
        slot = self._joined % self.SLOTS
        self._joined += 1
        sent = self._assigned
        yield orchestrator_pb2.SubscribeResponse(
            desired=self._desired(request), heartbeat_interval_seconds=self._heartbeat
        )
        while True:
            await self._slots[slot].wait()
            if self._assigned != sent:
                sent = self._assigned
                yield orchestrator_pb2.SubscribeResponse(
                    desired=self._desired(request), heartbeat_interval_seconds=self._heartbeat
                )
            else:
                yield orchestrator_pb2.SubscribeResponse(
                    heartbeat=orchestrator_pb2.Heartbeat(),
                    heartbeat_interval_seconds=self._heartbeat,
                )

    async def ReportStatus(
        self, request: orchestrator_pb2.ReportStatusRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ReportStatusResponse:
        return orchestrator_pb2.ReportStatusResponse(events_stored=len(request.events))


async def _serve(port: int, heartbeat: int) -> None:
    # The orchestrator's own server options: with gRPC's defaults a fleet's burst of
    # calls past 1,000 queued is CANCELLED, and the simulator's pings end its streams.
    server = grpc.aio.server(options=SERVER_OPTIONS)
    standin = _Standin(heartbeat)  # type: ignore[abstract]  # other RPCs: UNIMPLEMENTED
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(standin, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    ticker = asyncio.create_task(standin.tick())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, standin.assign, ASSIGNED[0], ASSIGNED[1])
    await stop.wait()
    ticker.cancel()
    await server.stop(1)


ASSIGNED = ("fleet-small", "2")  # what SIGUSR1 assigns (the fleet phases' model)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(10)


def measure_assign(
    count: int, channels: int, ramp: float = 2.0, processes: int = 2
) -> dict[str, Any]:
    """``count`` gateways split over two stand-ins; both assign at once; when each
    gateway saw the version (it then activates and reports, as in the assign phase).
    The simulator runs as ``processes`` processes, as in the assign phase."""
    ports = [free_port(), free_port()]
    raise_nofile()  # inherited by the stand-ins (no preexec_fn: see processes.py)
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fleet.ceiling", "--serve", str(port)],
        )
        for port in ports
    ]
    sim: SimulatorShards | None = None
    try:
        time.sleep(2.0)
        sim = SimulatorShards([f"127.0.0.1:{port}" for port in ports], "", channels, processes)
        started = sim.call(
            200,
            cmd="start",
            count=count,
            ramp=ramp,
            cohort_a=0,
            running={ASSIGNED[0]: ["1", ""]},
            timeout=120,
        )
        time.sleep(3.0)
        cpu = [proc_cpu_seconds(s.pid) for s in servers]
        sim_cpu = sim.cpu_seconds()
        since = time.time()
        for server in servers:
            server.send_signal(signal.SIGUSR1)
        seen = sim.call(
            90, cmd="seen", model=ASSIGNED[0], version=ASSIGNED[1], since=since, timeout=60,
            cohort=None,
        )  # fmt: skip
        seen["subscribed"] = started.get("subscribed")
        seen["standin_cpu_seconds"] = [
            round(proc_cpu_seconds(s.pid) - before, 2)
            for s, before in zip(servers, cpu, strict=True)
        ]
        seen["simulator_cpu_seconds"] = round(sim.cpu_seconds() - sim_cpu, 2)
        seen["simulator_processes"] = processes
        return seen
    finally:
        if sim is not None:
            sim.stop()
        for server in servers:
            _stop(server)


def measure(
    count: int, channels: int, idle_seconds: float = 10.0, ramp: float = 2.0
) -> dict[str, Any]:
    """Subscribe ``count`` simulated gateways to the stand-in; time, and simulator cores."""
    port = free_port()
    raise_nofile()  # inherited by the stand-in (no preexec_fn: see processes.py)
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fleet.ceiling", "--serve", str(port)],
    )
    sim: SimulatorShards | None = None
    try:
        time.sleep(2.0)
        sim = SimulatorShards([f"127.0.0.1:{port}"], "", channels, 1)
        before, began = sim.cpu_seconds(), time.monotonic()
        answer = sim.call(
            200, cmd="start", count=count, ramp=ramp, cohort_a=0, running={}, timeout=120
        )
        answer["simulator_cores"] = round(
            (sim.cpu_seconds() - before) / (time.monotonic() - began), 3
        )
        before = sim.cpu_seconds()
        time.sleep(idle_seconds)
        answer["simulator_idle_cores"] = round((sim.cpu_seconds() - before) / idle_seconds, 3)
        answer["standin_cpu_seconds"] = round(proc_cpu_seconds(server.pid), 1)
        answer.pop("timeline", None)
        return answer
    finally:
        if sim is not None:
            sim.stop()
        _stop(server)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet.ceiling")
    parser.add_argument("--serve", type=int, default=0, help="run the stand-in on this port")
    parser.add_argument("--heartbeat", type=int, default=10)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--assign", action="store_true", help="the assign floor, not the ceiling")
    parser.add_argument("--sim-processes", type=int, default=2, help="simulator processes")
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.heartbeat))
    elif args.assign:
        print(
            measure_assign(args.count, args.channels, ramp=args.ramp, processes=args.sim_processes)
        )
    else:
        print(measure(args.count, args.channels, ramp=args.ramp))


if __name__ == "__main__":
    main()
