"""Shadow evidence counts: fixed bins, quantiles from buckets, adding and subtracting."""

from __future__ import annotations

import math

import numpy as np

from edge_contracts.shadow_evidence import (
    CONFIDENCE_BINS,
    LATENCY_BUCKETS,
    ShadowEvidence,
    confidence_bin,
    evidence_from_proto,
    evidence_to_proto,
    latency_bucket,
    latency_quantile_us,
)


def test_confidence_deciles_include_one_in_the_last_bin() -> None:
    assert [confidence_bin(c) for c in (0.0, 0.05, 0.1, 0.55, 0.99, 1.0)] == [0, 0, 1, 5, 9, 9]
    assert confidence_bin(math.nan) == 0 and confidence_bin(-1.0) == 0


def test_a_p95_read_from_the_buckets_is_within_five_percent() -> None:
    rng = np.random.default_rng(3)
    seconds = rng.lognormal(mean=math.log(0.004), sigma=0.6, size=2000)
    counts = [0] * LATENCY_BUCKETS
    for value in seconds:
        counts[latency_bucket(float(value))] += 1
    exact = float(np.quantile(seconds, 0.95)) * 1e6
    estimate = latency_quantile_us(counts, 0.95)
    assert estimate is not None and abs(estimate - exact) / exact < 0.05


def test_latency_buckets_cover_microseconds_to_tens_of_seconds() -> None:
    assert latency_bucket(0.0) == 0 and latency_bucket(5e-6) == 0
    assert latency_bucket(10e-6) == 1
    assert latency_bucket(3600.0) == LATENCY_BUCKETS - 1
    assert latency_quantile_us([0] * LATENCY_BUCKETS, 0.95) is None


def evidence(compared: int, agreed: int, errors: int = 0) -> ShadowEvidence:
    confidence = tuple([0] * (CONFIDENCE_BINS - 1) + [compared])
    latency = tuple([0] * 20 + [compared] + [0] * (LATENCY_BUCKETS - 21))
    return ShadowEvidence(compared, agreed, errors, 0, confidence, confidence, latency, latency)


def test_evidence_adds_up_and_subtracts_a_baseline() -> None:
    total = evidence(10, 9).plus(evidence(5, 5, errors=1))
    assert (total.compared, total.agreed, total.candidate_errors, total.requests) == (15, 14, 1, 16)
    assert total.since(evidence(10, 9)) == evidence(5, 5, errors=1)
    assert total.since(None) == total


def test_a_gateway_that_restarted_counts_from_zero_so_all_of_it_is_new() -> None:
    after_restart = evidence(3, 3)
    assert after_restart.since(evidence(10, 9)) == after_restart


def test_proto_and_json_round_trips_keep_every_count() -> None:
    original = evidence(7, 6, errors=2)
    assert evidence_from_proto(evidence_to_proto(original)) == original
    assert ShadowEvidence.from_dict(original.to_dict()) == original


def test_histograms_of_another_length_are_padded_or_cut() -> None:
    short = ShadowEvidence.from_dict({"compared": 1, "candidate_confidence": [1]})
    assert len(short.candidate_confidence) == CONFIDENCE_BINS
    long = ShadowEvidence.from_dict({"active_latency": [1] * (LATENCY_BUCKETS + 5)})
    assert len(long.active_latency) == LATENCY_BUCKETS
