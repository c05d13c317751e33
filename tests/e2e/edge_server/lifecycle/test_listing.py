"""What ListModels reports about versions: rejected pushes of models the gateway does
not serve, and the previous version kept loaded through the rollback window."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2, types_pb2
from tests.support.bundles import build_bundle, push
from tests.support.lifecycle import (  # noqa: F401
    GRAY_MANIFEST,
    Harness,
    harness,
    start_harness,
    stop_harness,
)
from tests.support.model_factory import linear_classifier

REJECTED = types_pb2.MODEL_STATE_REJECTED
READY = types_pb2.MODEL_STATE_READY
UNLOADED = types_pb2.MODEL_STATE_UNLOADED
LONG_WINDOW = 60.0  # outlasts the test: the previous version is still loaded at the end
WINDOW = 3.0  # a window the test waits out


async def _versions(running: Harness, name: str) -> dict[str, model_pb2.ModelVersionInfo]:
    listed = await running.models.ListModels(model_pb2.ListModelsRequest(model_name=name))
    return {v.version: v for v in listed.models[0].versions}


async def _loaded_at(running: Harness, name: str) -> float:
    """When the serving version of ``name`` was loaded, as Health reports it."""
    health = await running.inference.Health(inference_pb2.HealthRequest())
    model = next(m for m in health.models if m.name == name)
    return float(model.loaded_at.ToNanoseconds()) / 1e9


def _until(reason: str) -> float:
    """The UTC time at the end of "kept loaded for an instant rollback until <time>"."""
    stamp = reason.rsplit(" ", 1)[-1]
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


async def test_rejected_push_of_a_new_model_is_listed(harness: Harness) -> None:
    model = linear_classifier(harness.workdir / "fresh" / "model.onnx", seed=5)
    unsigned = build_bundle(
        harness.workdir / "fresh.edgebundle", model, "fresh", "1", None, GRAY_MANIFEST
    )
    responses, _ = await push(harness.models, unsigned)
    assert responses[-1].stage == model_pb2.UPDATE_STAGE_REJECTED
    everything = await harness.models.ListModels(model_pb2.ListModelsRequest())
    fresh = next((m for m in everything.models if m.name == "fresh"), None)
    assert fresh is not None, [m.name for m in everything.models]
    assert fresh.active_version == "" and fresh.state == UNLOADED
    [version] = fresh.versions
    assert version.version == "1" and version.state == REJECTED
    assert "not signed" in version.reason
    only = await _versions(harness, "fresh")
    assert only["1"].state == REJECTED and only["1"].reason == version.reason
    # A model that failed its push is not served: Health does not report it.
    health = await harness.inference.Health(inference_pb2.HealthRequest())
    assert "fresh" not in [m.name for m in health.models]


async def test_broken_new_model_is_listed_not_served(harness: Harness) -> None:
    junk = build_bundle(
        harness.workdir / "junk.edgebundle", b"not onnx", "junk", "1", harness.key, GRAY_MANIFEST
    )
    responses, _ = await push(harness.models, junk)
    assert responses[-1].stage == model_pb2.UPDATE_STAGE_REJECTED
    assert (await _versions(harness, "junk"))["1"].state == REJECTED
    health = await harness.inference.Health(inference_pb2.HealthRequest())
    assert "junk" not in [m.name for m in health.models]


async def test_previous_version_stays_loaded_through_the_window(
    model_root: Path, tmp_path: Path
) -> None:
    running = await start_harness(
        model_root,
        tmp_path / "w",
        rollback_window_seconds=LONG_WINDOW,
        rollback_min_requests=10_000,
    )
    try:
        before = await _loaded_at(running, "gray")
        responses, _ = await push(running.models, running.gray_bundle("3"))
        assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE
        versions = await _versions(running, "gray")
        assert versions["3"].state == READY
        assert versions["2"].state == READY, versions["2"]
        assert "instant rollback" in versions["2"].reason
        # A manual rollback inside the window swaps back to the loaded version: no reload.
        await running.models.RollbackModel(model_pb2.RollbackModelRequest(model_name="gray"))
        assert await running.predict_version() == "2"
        assert await _loaded_at(running, "gray") == before
    finally:
        await stop_harness(running)


async def test_previous_version_is_released_after_the_window(
    model_root: Path, tmp_path: Path
) -> None:
    running = await start_harness(
        model_root, tmp_path / "w", rollback_window_seconds=WINDOW, rollback_min_requests=10_000
    )
    try:
        before = await _loaded_at(running, "gray")
        await push(running.models, running.gray_bundle("3"))
        standby = (await _versions(running, "gray"))["2"]
        assert standby.state == READY, standby
        until = _until(standby.reason)  # the end of the window, as the gateway reports it
        while (await _versions(running, "gray"))["2"].state == READY:
            assert time.time() < until + 10, "still loaded long after the window"
            await asyncio.sleep(0.1)
        assert time.time() >= until - 1  # released at the end of the window, not before
        v2 = (await _versions(running, "gray"))["2"]
        assert v2.state == UNLOADED and v2.reason == ""
        # Rolling back now loads version 2 again from disk.
        await running.models.RollbackModel(model_pb2.RollbackModelRequest(model_name="gray"))
        assert await running.predict_version() == "2"
        assert await _loaded_at(running, "gray") > before
    finally:
        await stop_harness(running)


async def test_no_window_releases_the_previous_version_at_once(harness: Harness) -> None:
    # The harness runs with --rollback-window-seconds 0.
    await push(harness.models, harness.gray_bundle("3"))
    assert (await _versions(harness, "gray"))["2"].state == UNLOADED
