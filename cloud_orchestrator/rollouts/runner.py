"""Executing rollouts: wave by wave, at most K gateways at a time, halting and rolling a
wave back when its failures cross the threshold.

A runner claims a rollout (see ``rollouts.store``), renews the lease while it works and
persists every gateway's state, so a restarted or different process resumes where
the last owner stopped: finished gateways are not touched again, an interrupted push
resumes from the bytes the gateway already holds, and a gateway being watched is
watched again. What happens on one gateway (push or pull mode, the watch window,
restoring the previous version) is ``rollouts.target.TargetDeployer``'s job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from cloud_orchestrator.errors import Conflict, GatewayError, LeaseLost, NotFound
from cloud_orchestrator.fleet.store import Fleet
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.rollouts.evidence_gate import EvidenceGate
from cloud_orchestrator.rollouts.evidence_store import ShadowEvidenceStore
from cloud_orchestrator.rollouts.gates import GateConfig
from cloud_orchestrator.rollouts.gateway_control import BundleRef
from cloud_orchestrator.rollouts.observer import RolloutObserver
from cloud_orchestrator.rollouts.pacing import RatePacer
from cloud_orchestrator.rollouts.plan import FailureThreshold
from cloud_orchestrator.rollouts.store import (
    TERMINAL_TARGET_STATES,
    RolloutRecord,
    RolloutStore,
    TargetRecord,
)
from cloud_orchestrator.rollouts.target import Connect, TargetDeployer

__all__ = ["Connect", "RolloutObserver", "RolloutRunner", "RunnerConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    owner: str
    lease_seconds: float = 30.0
    poll_seconds: float = 2.0
    pull_timeout_seconds: float = 600.0
    pull_poll_seconds: float = 0.5


class RolloutRunner:
    def __init__(
        self,
        store: RolloutStore,
        registry: Registry,
        fleet: Fleet,
        connect: Connect,
        config: RunnerConfig,
        observer: RolloutObserver | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.fleet = fleet
        self.config = config
        self.observer = observer or RolloutObserver()
        self.targets = TargetDeployer(
            store,
            fleet,
            connect,
            self.observer,
            owner=config.owner,
            pull_timeout_seconds=config.pull_timeout_seconds,
            pull_poll_seconds=config.pull_poll_seconds,
        )
        self.gate = EvidenceGate(self.targets, ShadowEvidenceStore(store.db))

    # -- entry points -----------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Claim and run active rollouts until ``stop`` is set."""
        while not stop.is_set():
            try:
                record = await asyncio.to_thread(
                    self.store.claim, self.config.owner, self.config.lease_seconds
                )
            except Exception:
                logger.exception("claiming a rollout failed; retrying")
                record = None
            if record is not None:
                await self.execute(record, stop)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_seconds)

    async def run_one(self, rollout_id: str) -> RolloutRecord:
        """Claim one rollout and run it to its end in this process."""
        record = await asyncio.to_thread(
            self.store.claim, self.config.owner, self.config.lease_seconds, rollout_id
        )
        if record is None:
            current = await asyncio.to_thread(self.store.get, rollout_id)
            if current.state not in ("PENDING", "RUNNING"):
                return current
            raise Conflict(
                f"rollout {rollout_id} is run by {current.owner} (lease for another "
                f"{max(0.0, current.lease_expires_at - time.time()):.0f} s)"
            )
        await self.execute(record)
        return await asyncio.to_thread(self.store.get, rollout_id)

    async def execute(self, record: RolloutRecord, stop: asyncio.Event | None = None) -> None:
        """Drive a claimed rollout while renewing its lease; stop when the lease is lost."""
        logger.info(
            "%s runs rollout %s: %s version %s, wave %d of %d",
            self.config.owner,
            record.id,
            record.model_name,
            record.version,
            record.current_wave + 1,
            record.wave_count,
        )
        drive = asyncio.create_task(self._drive(record))
        renew = asyncio.create_task(self._renew(record.id, drive))
        stopper = asyncio.create_task(stop.wait()) if stop is not None else None
        try:
            waiters: set[asyncio.Future[object]] = {drive}  # type: ignore[arg-type]
            if stopper is not None:
                waiters.add(stopper)  # type: ignore[arg-type]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not drive.done():  # shutting down: hand the rollout to another process
                drive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drive
                await asyncio.to_thread(self.store.release, record.id, self.config.owner)
                return
            try:
                drive.result()
            except asyncio.CancelledError:
                logger.warning("rollout %s: lease lost, another orchestrator continues", record.id)
            except LeaseLost as exc:
                logger.warning("rollout %s: %s", record.id, exc)
            except Exception as exc:
                logger.exception("rollout %s failed", record.id)
                with contextlib.suppress(LeaseLost):
                    await asyncio.to_thread(
                        self.store.finish,
                        record.id,
                        self.config.owner,
                        "HALTED",
                        f"orchestrator error: {exc}",
                    )
        finally:
            renew.cancel()
            if stopper is not None:
                stopper.cancel()

    async def _renew(self, rollout_id: str, drive: asyncio.Task[None]) -> None:
        interval = max(0.2, self.config.lease_seconds / 3)
        while not drive.done():
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(
                    self.store.renew, rollout_id, self.config.owner, self.config.lease_seconds
                )
            except LeaseLost:
                drive.cancel()
                return
            except Exception:
                logger.exception("renewing the lease of rollout %s failed", rollout_id)

    # -- the rollout ------------------------------------------------------------------------

    async def _drive(self, record: RolloutRecord) -> None:
        owner = self.config.owner
        try:
            info = await asyncio.to_thread(self.registry.version, record.model_name, record.version)
            blocks = await asyncio.to_thread(self.registry.bundle_source, info)
        except NotFound as exc:
            await asyncio.to_thread(self.store.finish, record.id, owner, "HALTED", str(exc))
            return
        bundle = BundleRef(blocks, info.model, info.version, info.sha256, info.size_bytes)
        threshold = FailureThreshold.parse(record.max_failures)
        pacer = RatePacer(record.rate_per_minute)  # one pace across all waves
        gate = GateConfig.from_json(record.gate)
        for wave in range(record.current_wave, record.wave_count):
            self.observer.on_wave(record.id, wave, record.wave_count)
            current = await asyncio.to_thread(self.store.get, record.id)
            targets = [t for t in current.targets if t.wave == wave]
            if gate is not None:
                outcome = await self.gate.run(record, bundle, targets, gate, pacer)
                if not outcome.passed:
                    await asyncio.to_thread(
                        self.store.finish, record.id, owner, "HALTED", outcome.reason
                    )
                    logger.warning("rollout %s halted: %s", record.id, outcome.reason)
                    return
                current = await asyncio.to_thread(self.store.get, record.id)
                targets = [t for t in current.targets if t.wave == wave]
            await self._run_wave(record, bundle, targets, threshold, pacer)
            current = await asyncio.to_thread(self.store.get, record.id)
            targets = [t for t in current.targets if t.wave == wave]
            failed = [t for t in targets if t.state == "FAILED"]
            if threshold.exceeded(len(failed), len(targets)):
                details = "; ".join(f"{t.gateway_id}: {t.reason}" for t in failed[:3])
                reason = (
                    f"wave {wave + 1} of {record.wave_count}: {len(failed)} of {len(targets)} "
                    f"gateways failed (max {threshold.text}): {details}"
                )
                await self._roll_back_wave(record, targets, reason)
                await asyncio.to_thread(self.store.finish, record.id, owner, "HALTED", reason)
                logger.warning("rollout %s halted: %s", record.id, reason)
                return
            await asyncio.to_thread(self.store.advance, record.id, owner, wave + 1)
            await asyncio.to_thread(
                self.store.event, record.id, owner, "WAVE_DONE", "", f"wave {wave + 1}"
            )
        final = "STAGED" if record.stage_only else "SUCCEEDED"
        await asyncio.to_thread(self.store.finish, record.id, owner, final)
        logger.info("rollout %s: %s", record.id, final.lower())

    async def _run_wave(
        self,
        record: RolloutRecord,
        bundle: BundleRef,
        targets: list[TargetRecord],
        threshold: FailureThreshold,
        pacer: RatePacer,
    ) -> None:
        """Deploy the wave's unfinished gateways, at most K at a time and no faster than
        the rollout's rate; once the wave has more failures than allowed, the gateways not
        started yet are skipped."""
        failures = sum(t.state == "FAILED" for t in targets)
        gate = asyncio.Semaphore(record.max_parallel)

        async def deploy(target: TargetRecord) -> None:
            nonlocal failures
            async with gate:
                await pacer.wait()
                if threshold.exceeded(failures, len(targets)):
                    await self.targets.set_state(
                        record, target.gateway_id, "SKIPPED", "wave halted"
                    )
                    return
                if not await self.targets.deploy(record, bundle, target, gate):
                    failures += 1

        pending = [t for t in targets if t.state not in TERMINAL_TARGET_STATES]
        await asyncio.gather(*(deploy(t) for t in pending))

    async def _roll_back_wave(
        self, record: RolloutRecord, targets: list[TargetRecord], reason: str
    ) -> None:
        message = f"rollout {record.id} halted: {reason}"
        for target in targets:
            if target.state in ("PENDING", "SKIPPED", "ROLLED_BACK"):
                continue
            try:
                gateway = await asyncio.to_thread(self.fleet.gateway, target.gateway_id)
            except NotFound:
                continue
            try:
                restored = await self.targets.restore(record, target, gateway, message)
            except GatewayError as exc:
                await asyncio.to_thread(
                    self.store.event,
                    record.id,
                    self.config.owner,
                    "ROLLBACK_FAILED",
                    gateway.id,
                    str(exc),
                )
                continue
            if restored is not None:
                await self.targets.set_state(
                    record, gateway.id, "ROLLED_BACK", f"restored {restored or 'none'}"
                )
