"""Health-gated automatic rollback: watch a freshly activated version on real traffic.

After an activation the previous version stays loaded for the watch window (the
slot's ``standby``: one more session in memory for that long), so a rollback inside
the window, automatic or manual, is a reference swap rather than a reload. When
the new version's model-fault rate or p99 latency is worse than what the previous
version showed just before the swap (by the configured margins), the gateway rolls
back by itself and records why. Bad client input does not count against a version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from edge_server.catalogue.serving import ServingCatalogue, ServingModel, Standby
from edge_server.inference.statistics import StatisticsBook, WindowSummary
from edge_server.lifecycle.activation import VersionActivator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchPolicy:
    window_seconds: float = 60.0
    min_requests: int = 20
    max_fault_rate_increase: float = 0.05
    max_p99_ratio: float = 2.0
    p99_slack_seconds: float = 0.005
    poll_seconds: float = 0.2


def verdict(policy: WatchPolicy, new: WindowSummary, baseline: WindowSummary) -> str:
    """Why ``new`` is worse than ``baseline``, or "" when it is acceptable."""
    if new.count < policy.min_requests:
        return ""
    if new.fault_rate > baseline.fault_rate + policy.max_fault_rate_increase:
        return (
            f"fault rate {new.fault_rate:.1%} over {new.count} requests vs "
            f"{baseline.fault_rate:.1%} for the previous version"
        )
    if (
        baseline.count >= policy.min_requests
        and new.p99_s > baseline.p99_s * policy.max_p99_ratio
        and new.p99_s - baseline.p99_s > policy.p99_slack_seconds
    ):
        return (
            f"p99 latency {new.p99_s * 1000:.1f} ms vs {baseline.p99_s * 1000:.1f} ms for the "
            f"previous version (limit x{policy.max_p99_ratio:g})"
        )
    return ""


class RollbackWatcher:
    """Starts one watch task per activation that has a predecessor."""

    def __init__(
        self,
        manager: ServingCatalogue,
        activator: VersionActivator,
        statistics: StatisticsBook,
        policy: WatchPolicy,
    ) -> None:
        self._manager = manager
        self._activator = activator
        self._statistics = statistics
        self.policy = policy
        self._tasks: dict[str, asyncio.Task[None]] = {}
        activator.on_activated.append(self._on_activated)

    def _on_activated(self, model: ServingModel, previous: ServingModel | None) -> None:
        old = self._tasks.pop(model.name, None)
        if old is not None:
            old.cancel()
        if previous is None or previous.version == model.version or self.policy.window_seconds <= 0:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        slot = self._manager.slot(model.name)
        if slot is not None:
            slot.standby = Standby(previous, time.time() + self.policy.window_seconds)
        self._tasks[model.name] = loop.create_task(self._watch(model, previous, time.monotonic()))

    async def _watch(self, model: ServingModel, previous: ServingModel, swapped: float) -> None:
        try:
            await self._judge(model, previous, swapped)
        finally:
            self._release(model.name, previous)

    def _release(self, name: str, previous: ServingModel) -> None:
        """The window is over: drop the standby session (unless a newer one replaced it)."""
        slot = self._manager.slot(name)
        if slot is not None and slot.standby is not None and slot.standby.model is previous:
            slot.standby = None

    async def _judge(self, model: ServingModel, previous: ServingModel, swapped: float) -> None:
        policy = self.policy
        baseline = self._statistics.window(
            model.name, previous.version, swapped - policy.window_seconds, swapped
        )
        deadline = swapped + policy.window_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(policy.poll_seconds)
            slot = self._manager.slot(model.name)
            if slot is None or slot.active is not model:
                return  # replaced by someone else: nothing to judge
            current = self._statistics.window(model.name, model.version, swapped)
            reason = verdict(policy, current, baseline)
            if reason:
                await self._roll_back(model, previous, reason)
                return
        logger.info("model %s version %s passed its watch window", model.name, model.version)

    async def _roll_back(self, model: ServingModel, previous: ServingModel, reason: str) -> None:
        message = f"automatic rollback: {reason}"
        try:
            await self._activator.rollback(model.name, message, previous)
        except Exception:
            logger.exception("automatic rollback of model %s failed", model.name)

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
