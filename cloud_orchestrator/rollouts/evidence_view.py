"""The evidence of an evidence-gated rollout per wave: its gateways' counts added up
and judged again (what `rollout ID` shows beside each gateway's own verdict)."""

from __future__ import annotations

from typing import Any

from cloud_orchestrator.rollouts.gates import GateConfig, aggregate, judge
from cloud_orchestrator.rollouts.records import RolloutRecord
from edge_contracts.shadow_evidence import ShadowEvidence

__all__ = ["wave_evidence"]


def wave_evidence(record: RolloutRecord) -> list[dict[str, Any]]:
    """Per wave with evidence: its gateways, the summed counts and the verdict on them."""
    config = GateConfig.from_json(record.gate)
    if config is None:
        return []
    by_wave: dict[int, list[tuple[str, ShadowEvidence]]] = {}
    for target in record.targets:
        data = target.evidence_data
        if data:
            found = ShadowEvidence.from_dict(data["evidence"])
            by_wave.setdefault(target.wave, []).append((target.gateway_id, found))
    waves = []
    for wave, items in sorted(by_wave.items()):
        total = aggregate(e for _, e in items)
        verdict = judge(total, config, config.wanted * len(items))
        waves.append(
            {
                "wave": wave + 1,
                "gateways": [g for g, _ in items],
                "evidence": total.to_dict(),
                "verdict": verdict.to_dict(),
            }
        )
    return waves
