"""Evidence gates: does a candidate that shadowed live requests deserve activation?

Judged on ``edge_contracts.shadow_evidence.ShadowEvidence`` (pure functions), per gateway
and for a wave's gateways together; every gate must hold (docs/rollouts.md):

- agreement: the share of shadowed requests whose top-1 class equals the active
  version's, at least ``min_agreement`` (default 0.97, the issue's number);
- confidence shift: the Jensen-Shannon distance (edge_contracts/distribution_shift.py,
  base 2, in [0, 1]) between the candidate's and the active version's top-1 confidence
  deciles on the same requests, at most ``max_confidence_shift``. Default 0.1: about a
  tenth of the predictions moving to a neighbouring decile (0.5/0.5 -> 0.4/0.6 is 0.085);
  a re-quantized twin stays near 0.02, a model that lost its calibration goes past 0.2;
- latency: the candidate's p95 inference time over the active version's on the same
  requests, at most ``max_latency_ratio`` (default 1.5: a p95 of a few hundred runs on
  a shared board moves by 10-20% on its own; a real regression is 2x or worse). Times
  under ``latency_floor_ms`` (default 5) count as that floor: at that scale a p95 is
  scheduler noise, not a regression worth halting a rollout for (benchmarks/
  shadow_latency_ratio.py: the same network shadowing itself at ~200 us, 30 rounds of 40
  requests on a busy 2-core machine: ratio median 1.21, max 9.85, 2 rounds above 1.5
  without a floor, none with 5 ms);
- errors: no worse than the active version on the same requests: the candidate's
  error share may not exceed the active version's. Only requests the active version
  answered are shadowed, so in practice one candidate failure fails the gate;
- enough evidence: at least the requests asked for (``--evidence-requests``), or at
  least one in a ``--evidence-minutes`` window; no evidence is not a pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from cloud_orchestrator.errors import InvalidRequest
from edge_contracts.distribution_shift import jensen_shannon_distance
from edge_contracts.shadow_evidence import ShadowEvidence, latency_quantile_us

__all__ = ["DEFAULT_EVIDENCE_REQUESTS", "GateConfig", "Verdict", "aggregate", "judge"]

DEFAULT_EVIDENCE_REQUESTS = 200
GATES = ("shadow",)


@dataclass(frozen=True)
class GateConfig:
    kind: str = "shadow"
    evidence_requests: int = 0  # per gateway; 0 with evidence_minutes
    evidence_minutes: float = 0.0
    min_agreement: float = 0.97
    max_confidence_shift: float = 0.1
    max_latency_ratio: float = 1.5
    # --evidence-requests: how long to wait for them before judging what there is.
    timeout_minutes: float = 60.0
    latency_floor_ms: float = 5.0

    def checked(self) -> GateConfig:
        """The config with its defaults filled in; InvalidRequest for a bad value."""
        if self.kind not in GATES:
            raise InvalidRequest(f"--gate {self.kind!r} is not one of: {', '.join(GATES)}")
        if self.evidence_requests and self.evidence_minutes:
            raise InvalidRequest("give --evidence-requests or --evidence-minutes, not both")
        if self.evidence_requests < 0 or self.evidence_minutes < 0:
            raise InvalidRequest("--evidence-requests and --evidence-minutes must be positive")
        if not 0 <= self.min_agreement <= 1:
            raise InvalidRequest("--min-agreement must be within 0..1, such as 0.97")
        if not 0 <= self.max_confidence_shift <= 1:
            raise InvalidRequest(
                "--max-confidence-shift is a Jensen-Shannon distance within 0..1, such as 0.1"
            )
        if self.max_latency_ratio <= 0:
            raise InvalidRequest("--max-latency-ratio must be positive, such as 1.5")
        if self.latency_floor_ms < 0:
            raise InvalidRequest("--latency-floor-ms must be >= 0")
        if self.timeout_minutes <= 0:
            raise InvalidRequest("the evidence timeout must be positive")
        if not self.evidence_requests and not self.evidence_minutes:
            return GateConfig(**{**asdict(self), "evidence_requests": DEFAULT_EVIDENCE_REQUESTS})
        return self

    @property
    def wanted(self) -> int:
        """Shadowed requests a gateway needs before it can be judged."""
        return self.evidence_requests or 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GateConfig | None:
        if not text:
            return None
        return cls(**json.loads(text))

    def describe(self) -> str:
        amount = (
            f"{self.evidence_requests} requests per gateway"
            if self.evidence_requests
            else f"{self.evidence_minutes:g} min"
        )
        return (
            f"gate {self.kind}: evidence {amount}, agreement >= {self.min_agreement:g}, "
            f"confidence shift (JS distance) <= {self.max_confidence_shift:g}, "
            f"p95 latency ratio <= {self.max_latency_ratio:g} (floor "
            f"{self.latency_floor_ms:g} ms), errors no worse"
        )


@dataclass(frozen=True)
class Verdict:
    passed: bool
    requests: int
    agreement: float | None
    confidence_shift: float | None
    candidate_p95_us: float | None
    active_p95_us: float | None
    latency_ratio: float | None
    candidate_errors: int
    active_errors: int
    failures: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = list(self.failures)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**{**data, "failures": tuple(data.get("failures", ()))})

    def summary(self) -> str:
        """One line for events and tables."""

        def num(value: float | None, digits: int = 3) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        head = "passed" if self.passed else "failed: " + "; ".join(self.failures)
        return (
            f"{head} (requests {self.requests}, agreement {num(self.agreement)}, "
            f"JS distance {num(self.confidence_shift)}, p95 {num(self.candidate_p95_us, 0)} us "
            f"vs {num(self.active_p95_us, 0)} us, ratio {num(self.latency_ratio, 2)}, "
            f"errors {self.candidate_errors} vs {self.active_errors})"
        )


def aggregate(items: Iterable[ShadowEvidence]) -> ShadowEvidence:
    """A wave's evidence: the sum of its gateways' counts."""
    total = ShadowEvidence()
    for item in items:
        total = total.plus(item)
    return total


def judge(evidence: ShadowEvidence, config: GateConfig, wanted: int | None = None) -> Verdict:
    """Every gate on ``evidence``; ``wanted``: requests needed (the config's by default)."""
    needed = config.wanted if wanted is None else wanted
    failures: list[str] = []
    requests = evidence.requests
    if requests < needed:
        failures.append(f"only {requests} of {needed} requests shadowed")
    agreement = evidence.agreed / evidence.compared if evidence.compared else None
    if agreement is not None and agreement < config.min_agreement:
        failures.append(f"agreement {agreement:.3f} < {config.min_agreement:g}")
    shift = jensen_shannon_distance(evidence.candidate_confidence, evidence.active_confidence)
    if shift is not None and shift > config.max_confidence_shift:
        failures.append(f"confidence shift {shift:.3f} > {config.max_confidence_shift:g}")
    candidate = latency_quantile_us(evidence.candidate_latency, 0.95)
    active = latency_quantile_us(evidence.active_latency, 0.95)
    ratio = None
    if candidate is not None and active is not None:
        floor = max(config.latency_floor_ms * 1000.0, 1.0)
        ratio = max(candidate, floor) / max(active, floor)
        if ratio > config.max_latency_ratio:
            failures.append(f"p95 latency ratio {ratio:.2f} > {config.max_latency_ratio:g}")
    elif requests:
        failures.append("no paired inference times")
    if requests and evidence.candidate_errors / requests > evidence.active_errors / requests:
        failures.append(
            f"{evidence.candidate_errors} candidate errors vs {evidence.active_errors} active"
        )
    return Verdict(
        passed=not failures,
        requests=requests,
        agreement=agreement,
        confidence_shift=shift,
        candidate_p95_us=candidate,
        active_p95_us=active,
        latency_ratio=ratio,
        candidate_errors=evidence.candidate_errors,
        active_errors=evidence.active_errors,
        failures=tuple(failures),
    )
