"""How many streams the simulator itself drives: its gateways against a stand-in
OrchestratorService that does nothing but answer Subscribe (one desired state, then
heartbeats from a timer), so the orchestrator cannot be the limit.

``python -m benchmarks.fleet.ceiling --serve PORT`` is the stand-in; ``measure`` runs it
and the simulator, both as child processes stopped by PID.
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

from benchmarks.fleet.driver import SimulatorProcess
from benchmarks.fleet.postgres import free_port
from benchmarks.fleet.processes import proc_cpu_seconds, raise_nofile
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc

__all__ = ["measure"]


class _Standin(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, heartbeat: int) -> None:
        self._heartbeat = heartbeat

    async def Subscribe(
        self, request: orchestrator_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.SubscribeResponse]:
        desired = orchestrator_pb2.DesiredState(generation=1)
        for model in request.models:
            desired.models.add(model_name=model.model_name, model_version=model.active_version)
        yield orchestrator_pb2.SubscribeResponse(
            desired=desired, heartbeat_interval_seconds=self._heartbeat
        )
        while True:
            await asyncio.sleep(self._heartbeat)
            yield orchestrator_pb2.SubscribeResponse(
                heartbeat=orchestrator_pb2.Heartbeat(), heartbeat_interval_seconds=self._heartbeat
            )


async def _serve(port: int, heartbeat: int) -> None:
    server = grpc.aio.server()
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(
        _Standin(heartbeat),  # type: ignore[abstract]  # the other RPCs stay UNIMPLEMENTED
        server,
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


def measure(
    count: int, channels: int, idle_seconds: float = 10.0, ramp: float = 2.0
) -> dict[str, Any]:
    """Subscribe ``count`` simulated gateways to the stand-in; time, and simulator cores."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fleet.ceiling", "--serve", str(port)],
        preexec_fn=raise_nofile,
    )
    sim: SimulatorProcess | None = None
    try:
        time.sleep(2.0)
        sim = SimulatorProcess([f"127.0.0.1:{port}"], "", channels)
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
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet.ceiling")
    parser.add_argument("--serve", type=int, default=0, help="run the stand-in on this port")
    parser.add_argument("--heartbeat", type=int, default=10)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--ramp", type=float, default=2.0)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve, args.heartbeat))
    else:
        print(measure(args.count, args.channels, ramp=args.ramp))


if __name__ == "__main__":
    main()
