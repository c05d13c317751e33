"""Desired versus actual: bring each model to the version the orchestrator asks for.

A missing version is downloaded into the same resumable upload that ModelUpdate
uses (``ModelUpdater.session`` -> ``append`` -> ``commit``), so it is verified
(sha256, Ed25519 signature, ONNX load, warm-up, compatibility, golden samples) and
activated exactly as a push would be. A broken download resumes from the bytes
already stored. A version the gateway refused (REJECTED: a bad bundle, or one the
trust checks of edge_server/lifecycle/freshness.py turn down) is terminal for the
desired entry that asked for it: it is neither fetched nor reported again until the
desired state changes (it stops naming the version, or a new rollout asks for it, which
gets a fresh check and a fresh report). A rolled-back version is not tried again in the
rollout it was rolled back under. The local store keeps serving whatever happens to the
cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from edge_contracts.backoff import Backoff
from edge_contracts.maintenance_window import MaintenanceWindow, WindowError, local_seconds_of_day
from edge_server.catalogue.serving import ServingCatalogue
from edge_server.errors import CloudUnavailable, EdgeError, ModelNotFound, UpdateInProgress
from edge_server.lifecycle.activation import VersionActivator
from edge_server.lifecycle.ledger import Ledger, VersionState
from edge_server.lifecycle.updater import Mode, ModelUpdater, Progress, Stage, UpdateHeader
from edge_server.pull.types import (
    DesiredVersion,
    Fetch,
    RunningModel,
    StatusEvent,
)

__all__ = ["Reconciler"]

logger = logging.getLogger(__name__)

EventSink = Callable[[StatusEvent], None]
_DONE_STATES = {
    Mode.ACTIVATE: (VersionState.ACTIVE,),
    Mode.STAGE: (VersionState.STAGED, VersionState.ACTIVE, VersionState.INACTIVE),
    Mode.SHADOW: (VersionState.SHADOW,),
}
_EVENT_KINDS = {
    Stage.ACTIVE: "ACTIVATED",
    Stage.STAGED: "STAGED",
    Stage.SHADOW: "STAGED",
    Stage.REJECTED: "REJECTED",
}


class Reconciler:
    def __init__(
        self,
        manager: ServingCatalogue,
        updater: ModelUpdater,
        activator: VersionActivator,
        ledger: Ledger,
        fetch: Fetch,
        on_event: EventSink,
        source: str = "orchestrator",
        retry_seconds: float = 10.0,
    ) -> None:
        self._manager = manager
        self._updater = updater
        self._activator = activator
        self._ledger = ledger
        self._fetch = fetch
        self._on_event = on_event
        self._source = source
        self._retry_seconds = retry_seconds
        self._desired: tuple[DesiredVersion, ...] = ()
        self._wake = asyncio.Event()
        self._backoff: dict[tuple[str, str], tuple[Backoff, float]] = {}
        # (model, version) -> the (sha256, rollout id) of the desired entry it was refused
        # under; None once the desired state stopped naming it, so the next ask is new.
        self._refused_under: dict[tuple[str, str], tuple[str, str] | None] = {}
        # (model, version) -> the rollout that asked for it when it was rolled back
        self._rolled_back_in: dict[tuple[str, str], str] = {}
        activator.on_rolled_back.append(self._on_rolled_back)

    def _on_rolled_back(self, model: str, version: str, _reason: str) -> None:
        asked = [d.rollout_id for d in self._desired if (d.model, d.version) == (model, version)]
        self._rolled_back_in[(model, version)] = asked[0] if asked else ""

    @property
    def desired(self) -> tuple[DesiredVersion, ...]:
        return self._desired

    def set_desired(self, desired: Sequence[DesiredVersion]) -> None:
        if tuple(desired) != self._desired:
            self._desired = tuple(desired)
            self._backoff.clear()  # a new desired state is worth an immediate attempt
            named = {(d.model, d.version) for d in desired}
            for key in self._refused_under:
                if key not in named:
                    self._refused_under[key] = None
            logger.info(
                "desired state: %s",
                ", ".join(f"{d.model}={d.version}" for d in desired) or "nothing",
            )
        self._wake.set()

    def running(self) -> list[RunningModel]:
        """What this gateway runs now, per model."""
        models = []
        for slot in self._manager.slots():
            active = slot.active.version if slot.active else ""
            record = self._ledger.load(slot.name).record(active) if active else None
            models.append(
                RunningModel(slot.name, active, slot.state.value, record.sha256 if record else "")
            )
        return models

    async def run(self) -> None:
        """Converge whenever the desired state changes, and retry failures periodically
        (and when a maintenance window opens)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_wake())
            self._wake.clear()
            for desired in self._desired:
                await self.converge(self._in_window(desired))
            self._end_stale_shadows()

    def _next_wake(self) -> float:
        now = local_seconds_of_day()
        waits = [self._retry_seconds]
        for desired in self._desired:
            if desired.window and desired.mode is Mode.ACTIVATE:
                opens = MaintenanceWindow.parse(desired.window).seconds_until_open(now)
                if opens:
                    waits.append(opens + 0.05)  # just inside, not at the edge
        return min(waits)

    @staticmethod
    def _in_window(desired: DesiredVersion) -> DesiredVersion:
        """Outside its maintenance window an activation is a download only (STAGE); the
        activation follows when the window opens (the gateway's local time decides)."""
        if not desired.window or desired.mode is not Mode.ACTIVATE:
            return desired
        try:
            window = MaintenanceWindow.parse(desired.window)
        except WindowError as exc:
            logger.warning("model %s: %s; activating without a window", desired.model, exc)
            return desired
        if window.contains(local_seconds_of_day()):
            return desired
        return replace(desired, mode=Mode.STAGE)

    def _end_stale_shadows(self) -> None:
        """A version in shadow that the desired state no longer asks to shadow (a rollout's
        evidence gate halted, or it moved on) stops shadowing and stays staged."""
        wanted = {(d.model, d.version) for d in self._desired if d.mode is Mode.SHADOW}
        listed = {d.model for d in self._desired}
        for slot in self._manager.slots():
            shadow = slot.shadow
            if shadow is None or slot.name not in listed or (slot.name, shadow.version) in wanted:
                continue
            try:
                self._activator.end_shadow(
                    slot.name, shadow.version, "no longer asked for in shadow by the orchestrator"
                )
            except EdgeError as exc:
                logger.warning("ending the shadow of %s %s: %s", slot.name, shadow.version, exc)

    def _settled(self, desired: DesiredVersion) -> bool:
        """True when nothing is to be done for this entry now."""
        slot = self._manager.slot(desired.model)
        active = slot.active.version if slot and slot.active else ""
        if desired.mode is Mode.ACTIVATE and active == desired.version:
            return True
        record = self._ledger.load(desired.model).record(desired.version)
        same = record is not None and (
            not record.sha256 or not desired.sha256 or record.sha256 == desired.sha256
        )
        key = (desired.model, desired.version)
        asked = (desired.sha256, desired.rollout_id)
        if key in self._refused_under:
            if self._refused_under[key] == asked:
                return True  # refused and reported; wait for the desired state to change
        elif record is not None and same and record.state is VersionState.REJECTED:
            # Refused before this process started: as if refused under this entry, so a
            # restart does not fetch it again, but a new rollout of it does.
            self._refused_under[key] = asked
            return True
        if record is not None and same:
            if record.state is VersionState.ROLLED_BACK:
                # Not again in the rollout it was rolled back under (that would flap), but a
                # new rollout of the same version is an explicit redeploy: activate it. One
                # rolled back before this process started counts as rolled back in the
                # rollout first seen asking for it.
                return self._rolled_back_in.setdefault(key, desired.rollout_id) == (
                    desired.rollout_id
                )
            if record.state in _DONE_STATES[desired.mode] and desired.mode is not Mode.ACTIVATE:
                return True
        pending = self._backoff.get(key)
        return pending is not None and time.monotonic() < pending[1]

    async def converge(self, desired: DesiredVersion) -> None:
        if self._settled(desired):
            return
        key = (desired.model, desired.version)
        try:
            outcome = await self._install(desired)
        except UpdateInProgress:
            self._retry_later(key, "another update of the model is running")
            return
        except CloudUnavailable as exc:
            self._retry_later(key, str(exc))
            return
        except EdgeError as exc:
            self._retry_later(key, str(exc))
            self._emit(desired, "FAILED", str(exc))
            return
        self._backoff.pop(key, None)
        self._rolled_back_in.pop(key, None)
        if outcome is not None and outcome.stage is Stage.REJECTED:
            self._refused_under[key] = (desired.sha256, desired.rollout_id)
        else:
            self._refused_under.pop(key, None)
        if outcome is not None:
            self._emit(desired, _EVENT_KINDS.get(outcome.stage, "FAILED"), outcome.reason)

    def _retry_later(self, key: tuple[str, str], reason: str) -> None:
        backoff, _ = self._backoff.get(key, (Backoff(1.0, 60.0), 0.0))
        delay = backoff.next()
        self._backoff[key] = (backoff, time.monotonic() + delay)
        logger.warning("model %s version %s: %s; retrying in %.1f s", key[0], key[1], reason, delay)

    def _emit(self, desired: DesiredVersion, kind: str, reason: str) -> None:
        self._on_event(StatusEvent(desired.model, desired.version, kind, reason, time.time()))

    async def _install(self, desired: DesiredVersion) -> Progress | None:
        found = self._manager.store.find(desired.model, desired.version)
        record = self._ledger.load(desired.model).record(desired.version)
        if (
            found is not None
            and desired.mode is Mode.ACTIVATE
            and (record is None or record.state is not VersionState.REJECTED)
            and (
                record is None
                or not record.sha256
                or not desired.sha256
                or record.sha256 == desired.sha256
            )
        ):
            # On disk already (an earlier version, or a rollback target): activate it.
            await self._activator.activate_on_disk(desired.model, desired.version)
            return Progress(Stage.ACTIVE, desired.size, "activated from the local store")
        if (
            found is not None
            and desired.mode is Mode.SHADOW
            and record is not None
            and record.state in (VersionState.STAGED, VersionState.INACTIVE)
            and (not record.sha256 or not desired.sha256 or record.sha256 == desired.sha256)
        ):
            # Verified and inert on disk (an earlier gate that failed): shadow it again.
            await self._activator.shadow_on_disk(desired.model, desired.version)
            return Progress(Stage.SHADOW, desired.size, "shadowing the copy in the local store")
        if not desired.sha256:
            raise ModelNotFound(
                f"version {desired.version} of {desired.model} is neither published nor in "
                "this gateway's store"
            )
        header = UpdateHeader(
            name=desired.model,
            version=desired.version,
            size=desired.size,
            sha256=desired.sha256,
            mode=desired.mode,
            source=self._source,
        )
        with self._updater.session(header) as session:
            known = session.existing_outcome()
            if known is not None:
                return known
            offset = session.resume_offset
            if offset:
                logger.info(
                    "resuming the download of %s %s at byte %d of %d",
                    desired.model,
                    desired.version,
                    offset,
                    desired.size,
                )
            async for chunk_offset, data in self._fetch(desired.model, desired.version, offset):
                session.append(chunk_offset, data)
            final: Progress | None = None
            async for progress in session.commit():
                final = progress
            return final
