"""The fleet simulator process: N simulated gateways (benchmarks/fleet/gateway.py) as
multiplexed gRPC streams over a few channels, driven by JSON commands on stdin, one JSON
answer per command on stdout.

``python -m benchmarks.fleet.simulator --targets HOST:PORT[,HOST:PORT] --auth token:T
[--shard K/N]``; gateway i uses channel i mod (channels x targets), so two replicas share
the fleet evenly. With ``--shard K/N`` the process simulates the gateways i with
i mod N == K (their ids stay global) and its percentiles carry their raw values, so that
benchmarks/fleet/shards.py can merge N processes' answers into one fleet's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from benchmarks.fleet.auth import GatewayAuth, auth_from_spec
from benchmarks.fleet.gateway import Policy, SimulatedGateway
from benchmarks.fleet.processes import raise_nofile
from cloud_orchestrator.app import tune_garbage_collector

__all__ = ["Simulator", "percentiles"]

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not shared
]
FETCH_CHANNELS = 32  # per target, for FetchModel only (benchmarks/fleet/gateway.py)


# Set by --shard: percentiles then also give their values (rounded to the millisecond).
RAW_VALUES = False


def percentiles(values: Iterable[float]) -> dict[str, Any]:
    ordered = sorted(values)
    raw = {"values": [round(v, 3) for v in ordered]} if RAW_VALUES else {}
    if not ordered:
        return {"count": 0, "min": None, "p50": None, "p99": None, "max": None, **raw}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {
        "count": len(ordered),
        "min": round(ordered[0], 3),
        "p50": at(0.5),
        "p99": at(0.99),
        "max": round(ordered[-1], 3),
        **raw,
    }


class Simulator:
    def __init__(
        self,
        targets: list[str],
        channels_per_target: int,
        auth: GatewayAuth,
        fetch_channels_per_target: int = FETCH_CHANNELS,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.shard, self.shards = shard
        self.started = 0  # gateways started by every shard together (global indices)
        self.targets = len(targets)
        self.channels = [
            grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            for _ in range(channels_per_target)
            for target in targets
        ]
        self.fetch_channels = [
            grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            for _ in range(fetch_channels_per_target)
            for target in targets
        ]
        self.auth = auth
        self.policy = Policy()
        self.gateways: list[SimulatedGateway] = []
        self.cohorts: dict[str, list[SimulatedGateway]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def _routes(self, i: int) -> list[tuple[int, grpc.aio.Channel, grpc.aio.Channel]]:
        """Gateway i's home channel (i mod channels: replicas share the fleet evenly),
        then the channel of the same group on each other target; each with a fetch
        channel on the same target."""
        home = i % len(self.channels)
        group = home - home % self.targets
        fetch_group = (i // self.targets) % (len(self.fetch_channels) // self.targets)
        routes = []
        for k in range(self.targets):
            target = (home + k) % self.targets
            fetch = self.fetch_channels[fetch_group * self.targets + target]
            routes.append((target, self.channels[group + target], fetch))
        return routes

    def _mine(self, i: int) -> bool:
        return i % self.shards == self.shard

    def _members(self, cohort: str | None) -> list[SimulatedGateway]:
        return self.gateways if not cohort else self.cohorts.get(cohort, [])

    def stats(self) -> dict[str, Any]:
        errors: dict[str, int] = {}
        for gateway in self.gateways:
            for key, count in gateway.errors.items():
                errors[key] = errors.get(key, 0) + count
        return {"reconnects": sum(g.reconnects for g in self.gateways), "errors": errors}

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def start(
        self, count: int, ramp: float, cohort_a: int, running: dict[str, list[str]], timeout: float
    ) -> dict[str, Any]:
        """``count`` gateways dialing within ``ramp`` s; answers once all are subscribed."""
        began = time.time()
        base, mine = self.started, 0
        self.started += count
        first = len(self.gateways)
        for i in range(base, base + count):
            if not self._mine(i):
                continue
            mine += 1
            cohort = "a" if i < cohort_a else "b"
            gateway = SimulatedGateway(
                f"gw-{i:05d}",
                {"site": f"s{i % 10}", "cohort": cohort, "fleet": "sim"},
                {m: (v[0], v[1]) for m, v in running.items()},
                self._routes(i // self.shards),  # a shard's gateways spread over every route
                self.auth,
                self.policy,
            )
            self.gateways.append(gateway)
            self.cohorts.setdefault(cohort, []).append(gateway)
            self.tasks.append(asyncio.create_task(gateway.run(random.uniform(0, ramp))))
        timeline: list[list[float]] = []
        started = self.gateways[first:]

        def all_in() -> bool:
            subscribed = sum(1 for g in started if g.subscribed_at)
            elapsed = time.time() - began
            if not timeline or elapsed - timeline[-1][0] >= 1.0:
                timeline.append([round(elapsed, 1), subscribed])
            return subscribed == mine

        complete = await self._until(all_in, timeout)
        delays = [g.subscribed_at - began for g in started if g.subscribed_at]
        return {
            "requested": mine,
            "subscribed": len(delays),
            "complete": complete,
            "seconds_all": round(max(delays), 2) if complete and delays else None,
            "delays": percentiles(delays),
            "timeline": timeline,
            **self.stats(),
        }

    async def stop(self) -> dict[str, Any]:
        stats = self.stats()
        for task in self.tasks:
            task.cancel()
        if self.tasks:  # bounded: a call the gRPC core holds on to must not hang the run
            _, stuck = await asyncio.wait(self.tasks, timeout=20)
            stats["stuck_on_stop"] = len(stuck)
        self.tasks.clear()
        self.gateways.clear()
        self.cohorts.clear()
        self.started = 0
        return stats

    async def seen(
        self, model: str, version: str, since: float, timeout: float, cohort: str | None
    ) -> dict[str, Any]:
        """Latency from ``since`` until each gateway saw ``model`` ``version`` desired."""
        members, key = self._members(cohort), (model, version)
        complete = await self._until(lambda: all(key in g.seen for g in members), timeout)
        latencies = [max(0.0, g.seen[key] - since) for g in members if key in g.seen]

        def within(seconds: float) -> int:
            return sum(1 for x in latencies if x <= seconds)

        by_target: dict[int, list[float]] = {}
        for g in members:
            if key in g.seen:
                by_target.setdefault(g.target, []).append(max(0.0, g.seen[key] - since))
        return {
            "expected": len(members),
            "complete": complete,
            "latency": percentiles(latencies),
            # Per orchestrator a gateway was connected to when it saw the version: whether
            # one replica lagged (its wake-up, its send loop) or both spread alike.
            "latency_by_orchestrator": {
                str(target): percentiles(values) for target, values in sorted(by_target.items())
            },
            "within_3s": within(3.0),
            "within_10s": within(10.0),
            **self.stats(),
        }

    async def fetched(
        self, model: str, version: str, since: float, timeout: float, cohort: str | None
    ) -> dict[str, Any]:
        members, key = self._members(cohort), (model, version)
        complete = await self._until(lambda: all(key in g.reported for g in members), timeout)
        fetches = [g.fetches[key] for g in members if key in g.fetches]
        done = [f for f in fetches if f.done_at]
        return {
            "expected": len(members),
            "complete": complete,
            "fetched": len(done),
            "sha256_ok": sum(1 for f in done if f.ok),
            "sha256_bad": sum(1 for f in done if not f.ok),
            "interrupted": sum(f.interrupted for f in fetches),
            "resumed": sum(len(f.resumed_from) for f in fetches),
            "resumed_offsets": sorted({o for f in fetches for o in f.resumed_from})[:5],
            "bytes": sum(f.bytes for f in fetches),
            "bundle_size": max((f.size for f in fetches), default=0),
            "reported": sum(1 for g in members if key in g.reported),
            "seconds": percentiles(f.done_at - since for f in done),
            **self.stats(),
        }

    async def results(self, batches: int, timeout: float) -> dict[str, Any]:
        """Arm every gateway with ``batches``; each sends them on its next heartbeats."""
        before = sum(g.results_acked for g in self.gateways)
        for gateway in self.gateways:
            gateway.results_left += batches
        began = time.time()
        complete = await self._until(
            lambda: all(g.results_left <= 0 for g in self.gateways), timeout
        )
        acked = sum(g.results_acked for g in self.gateways) - before
        spent = time.time() - began
        return {
            "gateways": len(self.gateways),
            "sent_batches_expected": batches * len(self.gateways),
            "acked": acked,
            "complete": complete,
            "seconds": round(spent, 2),
            "batches_per_second": round(acked / spent, 1) if spent else None,
            **self.stats(),
        }

    async def enroll(self, count: int, timeout: float) -> dict[str, Any]:
        """Get the credentials of gw-00000.. up front (at most 100 calls at once), so that
        subscribe times measure subscribing, not enrolling."""
        limit = asyncio.Semaphore(100)
        failures: dict[str, int] = {}

        async def one(i: int) -> None:
            async with limit:
                try:
                    await self.auth.metadata(f"gw-{i:05d}", self.channels[i % len(self.channels)])
                except grpc.aio.AioRpcError as err:
                    failures[err.code().name] = failures.get(err.code().name, 0) + 1

        began = time.monotonic()
        mine = [i for i in range(count) if self._mine(i)]
        try:
            await asyncio.wait_for(asyncio.gather(*(one(i) for i in mine)), timeout)
            complete = True
        except TimeoutError:
            complete = False
        return {
            "count": len(mine),
            "complete": complete and not failures,
            "seconds": round(time.monotonic() - began, 2),
            "failures": failures,
        }

    def placement(self) -> dict[str, Any]:
        """How many gateways talk to each target now."""
        counts = [0] * self.targets
        for gateway in self.gateways:
            counts[gateway.target] += 1
        return {"per_target": counts}

    async def moved(self, target: int, since: float, timeout: float) -> dict[str, Any]:
        """Gateways that were on ``target`` at ``since``: how long until each is subscribed
        on another target again."""

        def was_on_target(g: SimulatedGateway) -> bool:
            before = [t for at, t in g.subscriptions if at <= since]
            return bool(before) and before[-1] == target

        members = [g for g in self.gateways if was_on_target(g)]

        def again(g: SimulatedGateway) -> float | None:
            return next((at for at, t in g.subscriptions if at > since and t != target), None)

        complete = await self._until(lambda: all(again(g) for g in members), timeout)
        delays = [at - since for g in members if (at := again(g)) is not None]
        return {
            "expected": len(members),
            "moved": len(delays),
            "complete": complete,
            "latency": percentiles(delays),
            **self.stats(),
        }

    async def reported(self, model: str, version: str, timeout: float) -> dict[str, Any]:
        """Until every gateway's ACTIVATED event for ``version`` was acknowledged."""
        key = (model, version)
        complete = await self._until(lambda: all(key in g.reported for g in self.gateways), timeout)
        return {
            "gateways": len(self.gateways),
            "acknowledged": sum(1 for g in self.gateways if key in g.reported),
            "given_up": sum(g.unreported for g in self.gateways),
            "complete": complete,
            **self.stats(),
        }

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.pop("cmd")
        if name == "enroll":
            return await self.enroll(**command)
        if name == "start":
            return await self.start(**command)
        if name == "stop":
            return await self.stop()
        if name == "policy":
            self.policy.fetch_models = set(command.get("fetch_models", []))
            self.policy.interrupt_fraction = float(command.get("interrupt_fraction", 0.0))
            self.policy.batches_per_call = int(command.get("batches_per_call", 2))
            return {"ok": True}
        if name == "seen":
            return await self.seen(**command)
        if name == "fetched":
            return await self.fetched(**command)
        if name == "results":
            return await self.results(**command)
        if name == "placement":
            return self.placement()
        if name == "moved":
            return await self.moved(**command)
        if name == "reported":
            return await self.reported(**command)
        raise ValueError(f"unknown command {name!r}")


async def _serve(args: argparse.Namespace) -> None:
    shard, _, shards = args.shard.partition("/")
    simulator = Simulator(
        args.targets.split(","),
        args.channels,
        auth_from_spec(args.auth),
        shard=(int(shard), int(shards)),
    )
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == '{"cmd": "quit"}':
            break
        try:
            answer = await simulator.handle(json.loads(line))
        except Exception as err:  # one bad command must not lose the fleet
            answer = {"error": f"{type(err).__name__}: {err}"}
        print(json.dumps(answer), flush=True)
    await simulator.stop()
    for channel in [*simulator.channels, *simulator.fetch_channels]:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet.simulator")
    parser.add_argument("--targets", required=True, help="HOST:PORT[,HOST:PORT...]")
    parser.add_argument("--channels", type=int, default=4, help="channels per target")
    parser.add_argument("--auth", default="", help="token:FLEET_TOKEN (benchmarks/fleet/auth.py)")
    parser.add_argument("--shard", default="0/1", help="K/N: the gateways i with i mod N == K")
    args = parser.parse_args()
    global RAW_VALUES
    RAW_VALUES = args.shard != "0/1"
    raise_nofile()
    # As `edge-orchestrator serve` does (cloud_orchestrator/app.py): the default collector
    # walks 10,000 gateways' objects after every 700 allocations, and this process's
    # receive times are what the assign latency is measured by.
    tune_garbage_collector()
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
