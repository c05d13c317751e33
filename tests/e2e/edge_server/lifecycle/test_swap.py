"""Hot swaps under traffic, automatic rollback, shadow mode and retention."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import grpc

from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2, types_pb2
from tests.support.bundles import build_bundle, push
from tests.support.lifecycle import GRAY_MANIFEST, Harness, gray_png, start_harness, stop_harness
from tests.support.model_factory import faulty_on_real_input, slow_classifier


async def test_ten_hot_swaps_under_traffic_drop_nothing(model_root: Path, tmp_path: Path) -> None:
    running = await start_harness(model_root, tmp_path / "w", keep_versions=3)
    stop = asyncio.Event()
    seen: list[list[int]] = [[], []]
    failures: list[str] = []

    async def client(index: int) -> None:
        request = inference_pb2.PredictRequest(image=gray_png(index * 40))
        while not stop.is_set():
            try:
                reply = await running.inference.Predict(request, timeout=10)
                seen[index].append(int(reply.model_version))
            except grpc.aio.AioRpcError as err:
                failures.append(f"{err.code().name}: {err.details()}")

    try:
        bundles = [running.gray_bundle(str(v)) for v in range(3, 13)]
        clients = [asyncio.ensure_future(client(i)) for i in range(2)]
        await asyncio.sleep(0.2)
        for bundle in bundles:
            responses, _ = await push(running.models, bundle)
            assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE, responses[-1].reason
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*clients)
    finally:
        await stop_harness(running)
    assert failures == []
    for versions in seen:
        assert len(versions) > 50
        assert versions == sorted(versions), "answering versions went backwards"
        assert versions[0] == 2 and versions[-1] == 12
    kept = sorted(int(p.name) for p in (model_root / "gray").iterdir() if p.name.isdigit())
    assert kept == [10, 11, 12]  # keep_versions=3: the active (12) and rollback target (11) stay


async def _traffic_until(harness: Harness, predicate_version: str, seconds: float) -> list[str]:
    versions: list[str] = []
    deadline = time.monotonic() + seconds
    request = inference_pb2.PredictRequest(image=gray_png())
    while time.monotonic() < deadline:
        try:
            reply = await harness.inference.Predict(request, timeout=10)
            versions.append(reply.model_version)
            if (
                reply.model_version == predicate_version
                and len(versions) > 1
                and versions[-2] != predicate_version
            ):
                return versions
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.INTERNAL, err.details()
            versions.append("error")
    return versions


async def _warm_baseline(harness: Harness, count: int = 40) -> None:
    for _ in range(count):
        await harness.inference.Predict(inference_pb2.PredictRequest(image=gray_png()))


WATCH = {"rollback_window_seconds": 4, "rollback_min_requests": 10}


async def test_faulty_version_rolls_back_by_itself(model_root: Path, tmp_path: Path) -> None:
    running = await start_harness(model_root, tmp_path / "w", **WATCH)
    try:
        await _warm_baseline(running)
        model = faulty_on_real_input(tmp_path / "f" / "model.onnx")
        bundle = build_bundle(
            tmp_path / "f.edgebundle", model, "gray", "3", running.key, GRAY_MANIFEST
        )
        responses, _ = await push(running.models, bundle)
        assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE
        versions = await _traffic_until(running, "2", 6)
        assert "error" in versions and versions[-1] == "2"
        listed = await running.models.ListModels(model_pb2.ListModelsRequest(model_name="gray"))
        v3 = next(v for v in listed.models[0].versions if v.version == "3")
        assert v3.state == types_pb2.MODEL_STATE_ROLLED_BACK
        assert v3.reason.startswith("automatic rollback: fault rate")
        assert (model_root / "gray" / "ACTIVE").read_text().strip() == "2"
        health = await running.inference.Health(inference_pb2.HealthRequest())
        gray_health = next(m for m in health.models if m.name == "gray")
        assert gray_health.last_rollback.startswith("from 3 to 2: automatic rollback")
        metrics = running.gateway.metrics.render().decode()
        assert 'edge_model_rollbacks_total{kind="automatic",model="gray"} 1.0' in metrics
    finally:
        await stop_harness(running)


async def test_slow_version_rolls_back_by_itself(model_root: Path, tmp_path: Path) -> None:
    running = await start_harness(model_root, tmp_path / "w", **WATCH)
    try:
        await _warm_baseline(running)
        model = slow_classifier(tmp_path / "s" / "model.onnx")
        bundle = build_bundle(
            tmp_path / "s.edgebundle", model, "gray", "3", running.key, GRAY_MANIFEST
        )
        assert (await push(running.models, bundle))[0][-1].stage == model_pb2.UPDATE_STAGE_ACTIVE
        versions = await _traffic_until(running, "2", 6)
        assert "3" in versions and versions[-1] == "2" and "error" not in versions
        listed = await running.models.ListModels(model_pb2.ListModelsRequest(model_name="gray"))
        v3 = next(v for v in listed.models[0].versions if v.version == "3")
        assert "p99 latency" in v3.reason
    finally:
        await stop_harness(running)


async def test_good_version_is_kept_after_its_watch_window(
    model_root: Path, tmp_path: Path
) -> None:
    running = await start_harness(model_root, tmp_path / "w", **WATCH)
    try:
        await _warm_baseline(running)
        assert (await push(running.models, running.gray_bundle("3")))[0][-1].stage == (
            model_pb2.UPDATE_STAGE_ACTIVE
        )
        versions = await _traffic_until(running, "2", 5)  # longer than the window
        assert set(versions) == {"3"}
        assert await running.predict_version() == "3"
    finally:
        await stop_harness(running)


async def test_shadow_version_reports_agreement(model_root: Path, tmp_path: Path) -> None:
    running = await start_harness(model_root, tmp_path / "w", shadow_sample_rate=1.0)
    try:
        # Same weights as the active version 2 (seed 20): full agreement expected.
        responses, _ = await push(running.models, running.gray_bundle("3", seed=20), mode=3)
        assert responses[-1].stage == model_pb2.UPDATE_STAGE_SHADOW
        for value in range(0, 250, 10):
            reply = await running.inference.Predict(
                inference_pb2.PredictRequest(image=gray_png(value))
            )
            assert reply.model_version == "2"  # the shadow never answers
            await asyncio.sleep(0.01)
        listed = await running.models.ListModels(model_pb2.ListModelsRequest(model_name="gray"))
        gray = listed.models[0]
        assert gray.shadow_version == "3"
        v3 = next(v for v in gray.versions if v.version == "3")
        assert v3.state == types_pb2.MODEL_STATE_SHADOW
        assert v3.shadow_compared >= 10 and v3.shadow_agreement == 1.0
    finally:
        await stop_harness(running)


async def test_shadow_disagreements_become_hard_examples(model_root: Path, tmp_path: Path) -> None:
    from edge_server.feedback.recorder import FeedbackRecorder

    running = await start_harness(model_root, tmp_path / "w", shadow_sample_rate=1.0)
    recorder = FeedbackRecorder()
    seen: list[tuple[str, str, int, int]] = []

    def listener(active, shadow, image, ours, theirs):  # type: ignore[no-untyped-def]
        seen.append((active.version, shadow.version, ours, theirs))
        # The model's privacy policy must allow examples; the default (aggregates) would not.
        permissive = dataclasses.replace(
            active.manifest, extra={"feedback": {"policy": "hard_examples"}}
        )
        recorder.record_disagreement(active.name, active.version, permissive, ours, "", image)

    try:
        shadow = running.gateway.predictor.shadow
        assert shadow is not None
        shadow.on_disagreement.append(listener)
        # Different weights (seed 99): the shadow disagrees on some inputs.
        responses, _ = await push(running.models, running.gray_bundle("3", seed=99), mode=3)
        assert responses[-1].stage == model_pb2.UPDATE_STAGE_SHADOW
        for value in range(0, 250, 5):
            await running.inference.Predict(inference_pb2.PredictRequest(image=gray_png(value)))
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
    finally:
        await stop_harness(running)
    assert seen and all(v == ("2", "3") for v in ((a, b) for a, b, _, _ in seen))
    assert all(ours != theirs for _, _, ours, theirs in seen)
    batch = recorder.drain(force=True)
    assert batch is not None and batch.examples
    assert {e.reason for e in batch.examples} == {"shadow_disagreement"}
    assert all(e.data.startswith(b"\x89PNG") for e in batch.examples)
