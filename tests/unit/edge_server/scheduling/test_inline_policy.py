"""InlinePolicy: a version runs on the event loop only once its measured work is known to
stay under the threshold."""

from __future__ import annotations

from edge_server.scheduling.inline_policy import FUSE_THRESHOLD_S, MIN_SAMPLES, InlinePolicy


def measure(
    policy: InlinePolicy, stage: str, seconds: float, count: int = MIN_SAMPLES, version: str = "1"
) -> None:
    for _ in range(count):
        policy.record("m", version, stage, seconds)


def test_an_unmeasured_version_never_runs_inline() -> None:
    policy = InlinePolicy(threshold_us=1000)
    assert not policy.inline("m", "1", with_preprocess=False)
    assert not policy.inline("m", "1", with_preprocess=True)
    measure(policy, "run", 1e-6, count=MIN_SAMPLES - 1)
    assert not policy.inline("m", "1", with_preprocess=False)
    measure(policy, "run", 1e-6, count=1)
    assert policy.inline("m", "1", with_preprocess=False)


def test_threshold_zero_never_inlines() -> None:
    policy = InlinePolicy(threshold_us=0)
    measure(policy, "run", 1e-9, count=10 * MIN_SAMPLES)
    measure(policy, "preprocess", 1e-9, count=10 * MIN_SAMPLES)
    assert not policy.inline("m", "1", with_preprocess=False)
    assert not policy.inline("m", "1", with_preprocess=True)


def test_measured_work_under_the_threshold_inlines_and_over_it_does_not() -> None:
    under = InlinePolicy(threshold_us=100)
    measure(under, "run", 60e-6)
    assert under.inline("m", "1", with_preprocess=False)
    over = InlinePolicy(threshold_us=100)
    measure(over, "run", 140e-6)
    assert not over.inline("m", "1", with_preprocess=False)
    at = InlinePolicy(threshold_us=100)
    measure(at, "run", 100e-6)
    assert not at.inline("m", "1", with_preprocess=False)  # "under" is strict


def test_a_slowing_version_stops_running_inline() -> None:
    policy = InlinePolicy(threshold_us=100)
    measure(policy, "run", 10e-6)
    assert policy.inline("m", "1", with_preprocess=False)
    measure(policy, "run", 1e-3, count=1)  # 0.9 x 10 us + 0.1 x 1000 us = 109 us
    assert not policy.inline("m", "1", with_preprocess=False)


def test_preprocess_cost_counts_only_with_preprocess() -> None:
    policy = InlinePolicy(threshold_us=100)
    measure(policy, "run", 60e-6)
    assert not policy.inline("m", "1", with_preprocess=True)  # preprocess not measured yet
    measure(policy, "preprocess", 60e-6)
    assert policy.inline("m", "1", with_preprocess=False)  # 60 us
    assert not policy.inline("m", "1", with_preprocess=True)  # 60 + 60 us
    cheap = InlinePolicy(threshold_us=100)
    measure(cheap, "run", 30e-6)
    measure(cheap, "preprocess", 30e-6)
    assert cheap.inline("m", "1", with_preprocess=True)


def test_a_new_version_starts_unmeasured() -> None:
    policy = InlinePolicy(threshold_us=100)
    measure(policy, "run", 10e-6, version="1")
    measure(policy, "preprocess", 10e-6, version="1")
    assert policy.inline("m", "1", with_preprocess=True)
    assert not policy.inline("m", "2", with_preprocess=False)
    assert not policy.inline("other", "1", with_preprocess=False)
    measure(policy, "run", 10e-6, version="2")
    assert policy.inline("m", "2", with_preprocess=False)
    assert not policy.inline("m", "2", with_preprocess=True)


def test_a_version_is_fused_once_a_row_is_measured_dear_enough() -> None:
    policy = InlinePolicy(threshold_us=300)
    for _ in range(MIN_SAMPLES - 1):
        policy.record("m", "1", "run", 2 * FUSE_THRESHOLD_S)
    assert not policy.fused("m", "1")  # not measured enough yet
    policy.record("m", "1", "run", 2 * FUSE_THRESHOLD_S)
    assert policy.fused("m", "1")
    assert not policy.fused("m", "2")  # per version


def test_a_cheap_model_seen_in_batches_is_not_fused() -> None:
    """A batch of 8 rows costing 8x a cheap row is cheap per row: it stays batched."""
    policy = InlinePolicy(threshold_us=0)  # fusing does not depend on inlining
    for _ in range(MIN_SAMPLES):
        policy.record("m", "1", "run", 8 * 0.2 * FUSE_THRESHOLD_S, rows=8)
    assert not policy.fused("m", "1")
    for _ in range(MIN_SAMPLES):
        policy.record("m", "2", "run", 8 * 2 * FUSE_THRESHOLD_S, rows=8)
    assert policy.fused("m", "2")
