"""An evidence-gated wave: install the candidate in SHADOW on the wave's gateways, collect
live evidence, judge it (rollouts/gates.py), and let the wave activate only when every
gate holds, for every gateway and for the wave as a whole.

On a failed gate nothing was activated: the candidate stops shadowing on every gateway
of the wave (push: EndShadow; pull: the desired state goes back to the active version,
and the gateway ends the shadow itself) and stays on disk, staged and inert, so the
evidence can be looked at and a later decision needs no download. The evidence goes
into each target (``rollout ID``, ``--json``) and the rollout's events, per gateway
(``EVIDENCE``) and for the wave (``GATE``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cloud_orchestrator.errors import GatewayError, NotFound
from cloud_orchestrator.fleet.store import GatewayInfo
from cloud_orchestrator.rollouts.evidence_store import ShadowEvidenceStore
from cloud_orchestrator.rollouts.gates import GateConfig, Verdict, aggregate, judge
from cloud_orchestrator.rollouts.gateway_control import BundleRef
from cloud_orchestrator.rollouts.pacing import RatePacer
from cloud_orchestrator.rollouts.store import TERMINAL_TARGET_STATES, RolloutRecord, TargetRecord
from cloud_orchestrator.rollouts.target import TargetDeployer
from edge_contracts.shadow_evidence import ShadowEvidence

__all__ = ["EvidenceGate", "GateOutcome"]

GATE_PASSED = "GATE_PASSED"
EVIDENCE_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    reason: str  # why the wave halted; "" when it passed


@dataclass
class _Shadowing:
    gateway: GatewayInfo
    baseline: ShadowEvidence | None
    evidence: ShadowEvidence = field(default_factory=ShadowEvidence)


class EvidenceGate:
    def __init__(self, targets: TargetDeployer, evidence: ShadowEvidenceStore) -> None:
        self.targets = targets
        self.evidence = evidence

    async def _event(self, record: RolloutRecord, kind: str, gateway: str, detail: str) -> None:
        await asyncio.to_thread(
            self.targets.store.event, record.id, self.targets.owner, kind, gateway, detail
        )

    async def run(
        self,
        record: RolloutRecord,
        bundle: BundleRef,
        targets: list[TargetRecord],
        config: GateConfig,
        pacer: RatePacer,
    ) -> GateOutcome:
        pending = [t for t in targets if t.state not in (*TERMINAL_TARGET_STATES, GATE_PASSED)]
        if not pending:
            return GateOutcome(True, "")
        wave = pending[0].wave + 1
        slots = asyncio.Semaphore(record.max_parallel)

        async def install(target: TargetRecord) -> _Shadowing | None:
            async with slots:
                await pacer.wait()
                return await self._install(record, bundle, target)

        installed = await asyncio.gather(*(install(t) for t in pending))
        shadowing = [s for s in installed if s is not None]
        if len(shadowing) < len(pending):
            await self._end(record, shadowing, "another gateway of the wave failed to shadow")
            return GateOutcome(
                False,
                f"wave {wave}: {len(pending) - len(shadowing)} of {len(pending)} gateways could "
                "not run the candidate in shadow; nothing was activated",
            )
        await self._collect(record, shadowing, config)
        return await self._judge(record, shadowing, config, wave)

    # -- 1. shadow --------------------------------------------------------------------------

    async def _install(
        self, record: RolloutRecord, bundle: BundleRef, target: TargetRecord
    ) -> _Shadowing | None:
        try:
            gateway = await asyncio.to_thread(self.targets.fleet.gateway, target.gateway_id)
        except NotFound:
            await self.targets.set_state(
                record, target.gateway_id, "FAILED", "gateway is no longer registered"
            )
            return None
        await self.targets.set_state(
            record,
            gateway.id,
            "SHADOWING",
            "installing the candidate in shadow",
            attempts=target.attempts + 1,
            pushed_by=self.targets.owner,
        )
        await self._event(record, "SHADOW", gateway.id, f"attempt {target.attempts + 1}")
        try:
            if gateway.address:
                baseline = await self._install_push(record, bundle, target, gateway)
            else:
                baseline = await self._install_pull(record, target, gateway)
        except GatewayError as exc:
            await self.targets.set_state(record, gateway.id, "FAILED", str(exc))
            return None
        await self.targets.set_state(record, gateway.id, "SHADOWING", "collecting evidence")
        return _Shadowing(gateway, baseline)

    async def _install_push(
        self, record: RolloutRecord, bundle: BundleRef, target: TargetRecord, gateway: GatewayInfo
    ) -> ShadowEvidence | None:
        control = self.targets.connect(gateway)
        try:
            status = await control.model_status(record.model_name)
            active = status.active_version if status else ""
            if not active or active == record.version:
                raise GatewayError(
                    f"gateway {gateway.id} serves {active or 'no version'} of "
                    f"{record.model_name}: there is nothing to compare the candidate with"
                )
            if not target.previous_version:
                await self.targets.set_state(
                    record, gateway.id, "SHADOWING", "", previous_version=active
                )
            outcome = await control.push(
                bundle, f"orchestrator:{record.id}", mode="shadow"
            )  # fmt: skip
            await self.targets.set_state(
                record, gateway.id, "SHADOWING", "", bytes_sent=outcome.bytes_sent
            )
            if outcome.stage != "SHADOW":
                raise GatewayError(f"{outcome.stage}: {outcome.reason}")
            status = await control.model_status(record.model_name, record.version)
            return status.evidence if status else None
        finally:
            await control.close()

    async def _install_pull(
        self, record: RolloutRecord, target: TargetRecord, gateway: GatewayInfo
    ) -> ShadowEvidence | None:
        running = gateway.running.get(record.model_name)
        active = running.active_version if running else ""
        if not active or active == record.version:
            raise GatewayError(
                f"gateway {gateway.id} runs {active or 'no version'} of {record.model_name}: "
                "there is nothing to compare the candidate with"
            )
        if not target.previous_version:
            await self.targets.set_state(
                record, gateway.id, "SHADOWING", "", previous_version=active
            )
        baseline, _ = await asyncio.to_thread(
            self.evidence.latest, gateway.id, record.model_name, record.version
        )
        pinned_at = time.time() - 1.0
        await asyncio.to_thread(
            self.targets.fleet.pin,
            gateway.id,
            record.model_name,
            record.version,
            record.id,
            "SHADOW",
        )
        deadline = pinned_at + self.targets.pull_timeout_seconds
        while time.time() < deadline:
            events = await asyncio.to_thread(
                self.targets.fleet.events, gateway.id, record.model_name, pinned_at
            )
            for event in events:
                if event.model_version != record.version:
                    continue
                if event.kind == "STAGED":  # what a pull gateway reports for SHADOW
                    return baseline
                if event.kind in ("REJECTED", "FAILED"):
                    raise GatewayError(f"{event.kind}: {event.reason}")
            await asyncio.sleep(self.targets.pull_poll_seconds)
        raise GatewayError(
            f"did not report {record.version} in shadow within "
            f"{self.targets.pull_timeout_seconds:g} s (is the gateway connected?)"
        )

    # -- 2. collect -------------------------------------------------------------------------

    async def _read(self, record: RolloutRecord, item: _Shadowing) -> ShadowEvidence:
        gateway = item.gateway
        if gateway.address:
            control = self.targets.connect(gateway)
            try:
                status = await control.model_status(record.model_name, record.version)
            finally:
                await control.close()
            found = status.evidence if status and status.evidence else ShadowEvidence()
        else:
            found, _ = await asyncio.to_thread(
                self.evidence.latest, gateway.id, record.model_name, record.version
            )
        return found.since(item.baseline)

    async def _collect(
        self, record: RolloutRecord, shadowing: list[_Shadowing], config: GateConfig
    ) -> None:
        """Until every gateway has the requests asked for (or the timeout), or for the
        minutes asked for; a gateway that cannot be read keeps its last reading."""
        started = time.monotonic()
        minutes = config.evidence_minutes or config.timeout_minutes
        await self._event(record, "COLLECTING", "", config.describe())
        while True:
            for item in shadowing:
                try:
                    item.evidence = await self._read(record, item)
                except GatewayError:
                    continue
            elapsed = time.monotonic() - started
            if elapsed >= minutes * 60:
                return
            if config.evidence_requests and all(
                s.evidence.requests >= config.evidence_requests for s in shadowing
            ):
                return
            await asyncio.sleep(min(EVIDENCE_POLL_SECONDS, max(0.05, minutes * 60 - elapsed)))

    # -- 3. judge ---------------------------------------------------------------------------

    async def _judge(
        self, record: RolloutRecord, shadowing: list[_Shadowing], config: GateConfig, wave: int
    ) -> GateOutcome:
        verdicts: list[tuple[_Shadowing, Verdict]] = []
        for item in shadowing:
            verdict = judge(item.evidence, config)
            verdicts.append((item, verdict))
            data = {"evidence": item.evidence.to_dict(), "verdict": verdict.to_dict()}
            state = "SHADOWING" if verdict.passed else "GATE_FAILED"
            await self.targets.set_state(
                record,
                item.gateway.id,
                state,
                "" if verdict.passed else "; ".join(verdict.failures),
                evidence=json.dumps(data),
            )
            await self._event(record, "EVIDENCE", item.gateway.id, verdict.summary())
        total = aggregate(s.evidence for s in shadowing)
        overall = judge(total, config, config.wanted * len(shadowing))
        await self._event(record, "GATE", "", f"wave {wave}: {overall.summary()}")
        failed = [(s, v) for s, v in verdicts if not v.passed]
        if overall.passed and not failed:
            for item in shadowing:
                await self.targets.set_state(record, item.gateway.id, GATE_PASSED, "")
            return GateOutcome(True, "")
        reason = "; ".join(
            [f"{s.gateway.id}: {'; '.join(v.failures)}" for s, v in failed[:3]]
            or ["; ".join(overall.failures)]
        )
        await self._end(record, shadowing, f"evidence gate failed in wave {wave}")
        for item, verdict in verdicts:
            if verdict.passed:  # its own evidence held, the wave's did not
                await self.targets.set_state(
                    record, item.gateway.id, "GATE_FAILED", "the wave's evidence gate failed"
                )
        return GateOutcome(
            False,
            f"wave {wave}: evidence gate failed ({reason}); nothing was activated, the "
            "candidate is staged and inert on the wave's gateways",
        )

    async def _end(self, record: RolloutRecord, shadowing: list[_Shadowing], why: str) -> None:
        """Stop the candidate's shadow everywhere; it never served."""
        for item in shadowing:
            gateway = item.gateway
            try:
                if gateway.address:
                    await _with_control(
                        self.targets,
                        gateway,
                        lambda c: c.end_shadow(record.model_name, record.version, why),
                    )
                else:
                    target = await asyncio.to_thread(self.targets.store.get, record.id)
                    previous = next(
                        (t.previous_version for t in target.targets if t.gateway_id == gateway.id),
                        "",
                    )
                    await self.targets.repin(gateway.id, record.model_name, previous, record.id)
            except GatewayError as exc:
                await self._event(record, "END_SHADOW_FAILED", gateway.id, str(exc))
                continue
            await self._event(record, "END_SHADOW", gateway.id, why)


async def _with_control(
    targets: TargetDeployer, gateway: GatewayInfo, call: Callable[..., Awaitable[None]]
) -> None:
    control = targets.connect(gateway)
    try:
        await call(control)
    finally:
        await control.close()
