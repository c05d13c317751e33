"""Evidence gates on counts: every gate must hold; no evidence is not a pass."""

from __future__ import annotations

import pytest

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.rollouts.gates import GateConfig, aggregate, judge
from edge_contracts.shadow_evidence import LATENCY_BUCKETS, ShadowEvidence, latency_bucket

CONFIG = GateConfig(evidence_requests=100).checked()


def latencies(seconds: float, count: int) -> tuple[int, ...]:
    counts = [0] * LATENCY_BUCKETS
    counts[latency_bucket(seconds)] = count
    return tuple(counts)


def evidence(
    agreed: int = 100,
    compared: int = 100,
    errors: int = 0,
    candidate_confidence: tuple[int, ...] = (0, 0, 0, 0, 0, 10, 20, 30, 20, 20),
    active_confidence: tuple[int, ...] = (0, 0, 0, 0, 0, 10, 20, 30, 20, 20),
    candidate_seconds: float = 0.020,
    active_seconds: float = 0.020,
) -> ShadowEvidence:
    return ShadowEvidence(
        compared,
        agreed,
        errors,
        0,
        candidate_confidence,
        active_confidence,
        latencies(candidate_seconds, compared),
        latencies(active_seconds, compared),
    )


def test_a_twin_passes_every_gate() -> None:
    verdict = judge(evidence(agreed=99), CONFIG)
    assert verdict.passed and verdict.failures == ()
    assert verdict.agreement == pytest.approx(0.99) and verdict.confidence_shift == 0.0
    assert verdict.latency_ratio == pytest.approx(1.0)


def test_low_agreement_fails_alone_when_the_confidences_match() -> None:
    verdict = judge(evidence(agreed=40), CONFIG)
    assert not verdict.passed and verdict.failures == ("agreement 0.400 < 0.97",)


def test_a_shifted_confidence_distribution_fails_on_the_js_distance() -> None:
    lower = (10, 20, 30, 20, 20, 0, 0, 0, 0, 0)
    verdict = judge(evidence(candidate_confidence=lower), CONFIG)
    assert verdict.confidence_shift == pytest.approx(1.0)
    assert verdict.failures == ("confidence shift 1.000 > 0.1",)


def test_a_slow_candidate_fails_on_the_p95_ratio() -> None:
    verdict = judge(evidence(candidate_seconds=0.050), CONFIG)
    assert verdict.latency_ratio is not None and 2.3 < verdict.latency_ratio < 2.7
    assert [f.split(" ")[:3] for f in verdict.failures] == [["p95", "latency", "ratio"]]


def test_times_under_the_floor_count_as_the_floor() -> None:
    fast = evidence(candidate_seconds=0.0008, active_seconds=0.0002)
    assert judge(fast, CONFIG).latency_ratio == pytest.approx(1.0)
    strict = GateConfig(evidence_requests=100, latency_floor_ms=0).checked()
    assert not judge(fast, strict).passed


def test_one_candidate_error_is_worse_than_an_active_version_without_any() -> None:
    verdict = judge(evidence(errors=1), CONFIG)
    assert verdict.requests == 101 and verdict.failures == ("1 candidate errors vs 0 active",)


def test_too_little_or_no_evidence_fails() -> None:
    assert judge(evidence(agreed=10, compared=10), CONFIG).failures == (
        "only 10 of 100 requests shadowed",
    )
    empty = judge(ShadowEvidence(), CONFIG)
    assert not empty.passed and empty.agreement is None and empty.confidence_shift is None


def test_a_wave_is_judged_on_its_gateways_added_up() -> None:
    total = aggregate([evidence(agreed=100), evidence(agreed=90)])
    verdict = judge(total, CONFIG, 200)
    assert verdict.requests == 200 and verdict.agreement == pytest.approx(0.95)
    assert not verdict.passed


def test_the_defaults_and_the_config_round_trip() -> None:
    config = GateConfig().checked()
    assert config.evidence_requests == 200 and config.min_agreement == 0.97
    assert (config.max_confidence_shift, config.max_latency_ratio) == (0.1, 1.5)
    assert GateConfig.from_json(config.to_json()) == config
    assert GateConfig.from_json("") is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (GateConfig(evidence_requests=5, evidence_minutes=1), "not both"),
        (GateConfig(min_agreement=1.5), "--min-agreement"),
        (GateConfig(max_confidence_shift=2), "Jensen-Shannon"),
        (GateConfig(max_latency_ratio=0), "--max-latency-ratio"),
        (GateConfig(kind="canary"), "--gate 'canary'"),
    ],
)
def test_a_bad_setting_names_the_flag(config: GateConfig, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        config.checked()
