"""`edge-orchestrator rollout ID`'s evidence table: one row per gateway of an
evidence-gated rollout and one per wave (rollouts/evidence_view.py)."""

from __future__ import annotations

from cloud_orchestrator.cli.output import table
from cloud_orchestrator.rollouts.evidence_view import wave_evidence
from cloud_orchestrator.rollouts.gates import Verdict
from cloud_orchestrator.rollouts.records import RolloutRecord

__all__ = ["evidence_table"]


def _row(name: str, wave: int, verdict: Verdict) -> tuple[str, ...]:
    def num(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    return (
        name,
        str(wave),
        "pass" if verdict.passed else "FAIL",
        str(verdict.requests),
        num(verdict.agreement, ".3f"),
        num(verdict.confidence_shift, ".3f"),
        num(verdict.candidate_p95_us, ".0f"),
        num(verdict.active_p95_us, ".0f"),
        num(verdict.latency_ratio, ".2f"),
        f"{verdict.candidate_errors}/{verdict.active_errors}",
        "; ".join(verdict.failures),
    )


def evidence_table(record: RolloutRecord) -> str:
    rows = []
    for target in record.targets:
        data = target.evidence_data
        if data:
            rows.append(
                _row(target.gateway_id, target.wave + 1, Verdict.from_dict(data["verdict"]))
            )
    for wave in wave_evidence(record):
        rows.append(_row("(wave)", wave["wave"], Verdict.from_dict(wave["verdict"])))
    if not rows:
        return ""
    return table(
        rows,
        ("GATEWAY", "WAVE", "GATE", "REQUESTS", "AGREEMENT", "JS DIST", "P95 US", "ACTIVE P95",
         "RATIO", "ERRORS", "FAILURES"),
    )  # fmt: skip
