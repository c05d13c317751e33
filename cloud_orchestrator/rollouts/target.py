"""One gateway of a rollout: deploy the version, watch it, or put the previous one back.

Push-mode gateways (with an address) get the bundle over their ModelUpdate RPC;
pull-mode gateways get a desired-version pin and are watched through what they
report. Every state change is persisted, so another process can resume the rollout.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud_orchestrator.errors import GatewayError, NotFound
from cloud_orchestrator.fleet.store import Fleet, GatewayInfo, ReportedModel
from cloud_orchestrator.rollouts.gateway_control import BundleRef, GatewayControl
from cloud_orchestrator.rollouts.observer import RolloutObserver
from cloud_orchestrator.rollouts.store import RolloutRecord, RolloutStore, TargetRecord
from cloud_orchestrator.rollouts.windows import window_for, windows_from_json
from edge_contracts.maintenance_window import MaintenanceWindow, local_seconds_of_day

__all__ = ["Connect", "TargetDeployer"]

Connect = Callable[[GatewayInfo], GatewayControl]

# What a gateway answers to an ACTIVATE push of a version it holds already but does not
# serve (rolled back, staged, loaded, shadow): the verdict of the earlier push.
HELD_NOT_ACTIVE = frozenset({"STAGED", "SHADOW"})
WINDOW_RECHECK_SECONDS = 30.0


@dataclass
class TargetDeployer:
    """Deploys a rollout's version to one target gateway, or restores its previous one,
    on behalf of ``owner`` (the runner holding the rollout's lease)."""

    store: RolloutStore
    fleet: Fleet
    connect: Connect
    observer: RolloutObserver
    owner: str
    pull_timeout_seconds: float
    pull_poll_seconds: float

    async def set_state(
        self, record: RolloutRecord, gateway_id: str, state: str, reason: str, **changes: object
    ) -> None:
        """Persist a target's state (and other changed fields) and report it."""
        await asyncio.to_thread(
            self.store.update_target,
            record.id,
            gateway_id,
            self.owner,
            state=state,
            reason=reason,
            **changes,
        )
        self.observer.on_target(record.id, gateway_id, state, reason)

    async def deploy(
        self,
        record: RolloutRecord,
        bundle: BundleRef,
        target: TargetRecord,
        slot: asyncio.Semaphore | None = None,
    ) -> bool:
        """One gateway: returns False when it failed. ``slot`` (the wave's parallelism,
        held by the caller) is given back while the gateway waits for its window."""
        try:
            gateway = await asyncio.to_thread(self.fleet.gateway, target.gateway_id)
        except NotFound:
            await self.set_state(
                record, target.gateway_id, "FAILED", "gateway is no longer registered"
            )
            return False
        await self.set_state(
            record,
            gateway.id,
            "PUSHING",
            "",
            attempts=target.attempts + 1,
            pushed_by=self.owner,
        )
        await asyncio.to_thread(
            self.store.event,
            record.id,
            self.owner,
            "PUSH",
            gateway.id,
            f"attempt {target.attempts + 1}",
        )
        # The desired version: what pull-mode gateways fetch, and what `gateways` compares
        # every gateway's running version with.
        window = window_for(windows_from_json(record.windows), gateway.id, gateway.labels)
        await asyncio.to_thread(
            self.fleet.pin,
            gateway.id,
            record.model_name,
            record.version,
            record.id,
            "STAGE" if record.stage_only else "ACTIVATE",
            str(window) if window and not record.stage_only else "",
        )
        if gateway.address:
            state, reason = await self._push(record, bundle, target, gateway, window, slot)
        else:
            state, reason = await self._pull(record, target, gateway)
        await self.set_state(record, gateway.id, state, reason)
        return state == "SUCCEEDED"

    async def _push(
        self,
        record: RolloutRecord,
        bundle: BundleRef,
        target: TargetRecord,
        gateway: GatewayInfo,
        window: MaintenanceWindow | None,
        slot: asyncio.Semaphore | None,
    ) -> tuple[str, str]:
        control = self.connect(gateway)
        try:
            status = await control.model_status(record.model_name)
            previous = target.previous_version
            if not previous and status is not None and status.active_version != record.version:
                previous = status.active_version
                await self.set_state(record, gateway.id, "PUSHING", "", previous_version=previous)

            def on_bytes(stored: int, total: int) -> None:
                self.observer.on_bytes(record.id, gateway.id, stored, total)

            offset = status.utc_offset_seconds if status else 0
            closed = window is not None and not window.contains(local_seconds_of_day(offset))
            mode = "stage" if record.stage_only or closed else "activate"
            outcome = await control.push(bundle, f"orchestrator:{record.id}", on_bytes, mode)
            await self.set_state(record, gateway.id, "PUSHING", "", bytes_sent=outcome.bytes_sent)
            if record.stage_only and outcome.stage in ("STAGED", "SHADOW", "ACTIVE"):
                return ("SUCCEEDED" if outcome.stage == "ACTIVE" else "STAGED"), outcome.reason
            if outcome.stage in HELD_NOT_ACTIVE:
                if window is not None:
                    await self._wait_for_window(record, control, gateway.id, window, slot)
                await self._activate_held(record, control, gateway.id, outcome.stage)
            elif outcome.stage != "ACTIVE":
                return "FAILED", f"{outcome.stage}: {outcome.reason}"
            await self.set_state(record, gateway.id, "WATCHING", "")
            await asyncio.sleep(record.watch_seconds)
            status = await control.model_status(record.model_name, record.version)
        except GatewayError as exc:
            return "FAILED", str(exc)
        finally:
            await control.close()
        running = status.active_version if status else ""
        await asyncio.to_thread(
            self.fleet.report,
            gateway.id,
            [
                ReportedModel(
                    record.model_name,
                    running,
                    "READY" if status and status.ready else "UNKNOWN",
                    bundle.sha256 if running == record.version else "",
                )
            ],
        )
        if status is None or running != record.version or not status.ready:
            detail = f"{status.version_state} {status.version_reason}".strip() if status else ""
            return "FAILED", (
                f"not serving {record.version} after the {record.watch_seconds:g} s watch "
                f"window (active: {running or 'none'}{'; ' + detail if detail else ''})"
            )
        return "SUCCEEDED", ""

    async def _activate_held(
        self, record: RolloutRecord, control: GatewayControl, gateway_id: str, stage: str
    ) -> None:
        """The gateway already holds these exact bytes (the same sha256; a different
        content under this version is REJECTED) but does not serve them: rolled back,
        staged, shadowed. It verified them when they arrived, so ActivateModel makes
        them active without sending the bundle again."""
        await asyncio.to_thread(
            self.store.event,
            record.id,
            self.owner,
            "ACTIVATE",
            gateway_id,
            f"the gateway holds version {record.version} already ({stage}): activating it",
        )
        await control.activate(record.model_name, record.version)

    async def _wait_for_window(
        self,
        record: RolloutRecord,
        control: GatewayControl,
        gateway_id: str,
        window: MaintenanceWindow,
        slot: asyncio.Semaphore | None,
    ) -> None:
        """Until the gateway's local time is inside ``window`` (its UTC offset read again
        every check: a DST change or a moved gateway); the wave's slot is free meanwhile."""
        waiting = False
        try:
            while True:
                status = await control.model_status(record.model_name)
                offset = status.utc_offset_seconds if status else 0
                wait = window.seconds_until_open(local_seconds_of_day(offset))
                if wait == 0:
                    return
                if not waiting:
                    waiting = True
                    if slot is not None:
                        slot.release()
                    detail = f"staged; activates in its window {window} (gateway local time)"
                    await self.set_state(record, gateway_id, "WINDOW_WAIT", detail)
                    await asyncio.to_thread(
                        self.store.event, record.id, self.owner, "WINDOW_WAIT", gateway_id,
                        f"{detail}, opens in {wait} s",
                    )  # fmt: skip
                await asyncio.sleep(min(wait + 0.05, WINDOW_RECHECK_SECONDS))
        finally:
            if waiting and slot is not None:
                await slot.acquire()

    async def _pull(
        self, record: RolloutRecord, target: TargetRecord, gateway: GatewayInfo
    ) -> tuple[str, str]:
        model, version = record.model_name, record.version
        running = gateway.running.get(model)
        previous = target.previous_version
        if not previous and running is not None and running.active_version != version:
            previous = running.active_version
            await self.set_state(record, gateway.id, "PUSHING", "", previous_version=previous)
        pinned_at = time.time() - 1.0  # the pin was set just before this call
        deadline = pinned_at + self.pull_timeout_seconds
        watching_since: float | None = None
        while True:
            current = await asyncio.to_thread(self.fleet.gateway, gateway.id)
            events = await asyncio.to_thread(self.fleet.events, gateway.id, model, pinned_at)
            bad = [
                e
                for e in events
                if e.model_version == version and e.kind in ("REJECTED", "ROLLED_BACK")
            ]
            if bad:
                return "FAILED", f"{bad[-1].kind}: {bad[-1].reason}"
            staged = any(e.model_version == version and e.kind == "STAGED" for e in events)
            if staged and record.stage_only:
                return "STAGED", ""
            if staged and watching_since is None and deadline != math.inf:
                # Staged outside its maintenance window: the gateway activates it when
                # the window opens, however far away that is.
                deadline = math.inf
                await self.set_state(
                    record,
                    gateway.id,
                    "WINDOW_WAIT",
                    "staged; the gateway activates it in its window",
                )
            reported = current.running.get(model)
            serving = reported is not None and reported.active_version == version
            now = time.time()
            if serving and watching_since is None:
                watching_since = now
                await self.set_state(record, gateway.id, "WATCHING", "")
            if watching_since is not None:
                if not serving:
                    return "FAILED", f"stopped serving {version} during the watch window"
                if now - watching_since >= record.watch_seconds:
                    return "SUCCEEDED", ""
            elif now > deadline:
                return "FAILED", (
                    f"did not report {version} within {self.pull_timeout_seconds:g} s "
                    "(is the gateway connected?)"
                )
            await asyncio.sleep(self.pull_poll_seconds)

    async def restore(
        self, record: RolloutRecord, target: TargetRecord, gateway: GatewayInfo, message: str
    ) -> str | None:
        """Put the previous version back where the new one runs; None when nothing to do."""
        model, previous = record.model_name, target.previous_version
        if not gateway.address:
            reported = gateway.running.get(model)
            if reported is None or reported.active_version != record.version:
                return None
            await self.repin(gateway.id, model, previous, record.id)
            return previous
        control = self.connect(gateway)
        try:
            status = await control.model_status(model)
            if status is None or status.active_version != record.version:
                return None
            try:
                active = await control.rollback(model, message)
            except GatewayError:
                if not previous:
                    raise
                active = ""
            if previous and active != previous:
                await control.activate(model, previous)
                active = previous
            await self.repin(gateway.id, model, active, record.id)
            await asyncio.to_thread(
                self.fleet.report, gateway.id, [ReportedModel(model, active, "READY", "")]
            )
            return active
        finally:
            await control.close()

    async def repin(self, gateway_id: str, model: str, version: str, rollout_id: str) -> None:
        if version:
            await asyncio.to_thread(self.fleet.pin, gateway_id, model, version, rollout_id)
        else:
            await asyncio.to_thread(self.fleet.unpin, gateway_id, model)
