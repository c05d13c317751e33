"""ModelUpdate: push, stage, activate, roll back, resume, limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from edge_contracts.proto.edge.v1 import model_pb2, types_pb2
from tests.support.bundles import push, sha256_of
from tests.support.lifecycle import Harness, harness, start_harness, stop_harness  # noqa: F401

STAGES = model_pb2.UpdateStage


def stage_names(responses: list[model_pb2.ModelUpdateResponse]) -> list[str]:
    names: list[str] = []
    for response in responses:
        name = STAGES.Name(response.stage).removeprefix("UPDATE_STAGE_")
        if not names or names[-1] != name:
            names.append(name)
    return names


async def test_push_activates_and_reports_every_stage(harness: Harness, model_root: Path) -> None:
    assert await harness.predict_version() == "2"
    bundle = harness.gray_bundle("3")
    responses, sent = await push(harness.models, bundle)
    assert stage_names(responses) == [
        "RECEIVING", "VERIFYING", "LOADING", "WARMING_UP", "VALIDATING", "ACTIVE"
    ]  # fmt: skip
    assert sent == bundle.stat().st_size
    assert responses[-1].model_version == "3"
    assert await harness.predict_version() == "3"
    assert (model_root / "gray" / "ACTIVE").read_text().strip() == "3"
    assert (model_root / "gray" / "3" / "model.onnx").is_file()
    assert not list((model_root / ".incoming").glob("*.part"))
    listed = await harness.models.ListModels(model_pb2.ListModelsRequest(model_name="gray"))
    gray = listed.models[0]
    assert gray.active_version == "3" and gray.rollback_target == "2"
    v3 = next(v for v in gray.versions if v.version == "3")
    assert v3.state == types_pb2.MODEL_STATE_READY
    assert v3.sha256 == sha256_of(bundle) and v3.source == "test"
    assert v3.received_at.seconds > 0 and v3.activated_at.seconds > 0
    # Pushing the same bundle again is idempotent.
    again, sent_again = await push(harness.models, bundle)
    assert sent_again == 0 and again[-1].stage == STAGES.Value("UPDATE_STAGE_ACTIVE")


async def test_stage_then_activate_then_rollback(harness: Harness) -> None:
    responses, _ = await push(harness.models, harness.gray_bundle("3"), mode=2)
    assert stage_names(responses)[-1] == "STAGED"
    assert await harness.predict_version() == "2"
    activated = await harness.models.ActivateModel(
        model_pb2.ActivateModelRequest(model_name="gray", model_version="3")
    )
    assert activated.model.active_version == "3" and activated.model.rollback_target == "2"
    assert await harness.predict_version() == "3"
    rolled = await harness.models.RollbackModel(
        model_pb2.RollbackModelRequest(model_name="gray", reason="operator saw drift")
    )
    assert rolled.model.active_version == "2"
    assert await harness.predict_version() == "2"
    v3 = next(v for v in rolled.model.versions if v.version == "3")
    assert v3.state == types_pb2.MODEL_STATE_ROLLED_BACK
    assert "operator saw drift" in v3.reason
    with pytest.raises(grpc.aio.AioRpcError) as nothing_left:
        await harness.models.RollbackModel(model_pb2.RollbackModelRequest(model_name="gray"))
    assert nothing_left.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_resume_sends_only_the_remainder(harness: Harness) -> None:
    bundle = harness.gray_bundle("3")
    size = bundle.stat().st_size
    _, first_sent = await push(harness.models, bundle, stop_after_bytes=size // 2, chunk_size=4096)
    assert 0 < first_sent < size
    await asyncio.sleep(0.2)  # the server notices the cancelled stream
    responses, second_sent = await push(harness.models, bundle, chunk_size=4096)
    assert responses[0].resume_offset == first_sent
    assert second_sent == size - first_sent
    assert stage_names(responses)[-1] == "ACTIVE"
    assert await harness.predict_version() == "3"


async def test_limits_refuse_before_writing(model_root: Path, tmp_path: Path) -> None:
    running = await start_harness(model_root, tmp_path / "w", max_bundle_bytes=1000)
    try:
        bundle = running.gray_bundle("3")
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await push(running.models, bundle)
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-bundle-bytes" in (too_big.value.details() or "")
        assert not list((model_root / ".incoming").glob("*.part"))
    finally:
        await stop_harness(running)
    running = await start_harness(model_root, tmp_path / "q", disk_quota_bytes=10_000)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as over_quota:
            await push(running.models, running.gray_bundle("3"))
        assert over_quota.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "quota" in (over_quota.value.details() or "")
    finally:
        await stop_harness(running)


async def test_one_update_per_model_and_idle_deadline(model_root: Path, tmp_path: Path) -> None:
    running = await start_harness(model_root, tmp_path / "w", update_idle_timeout_seconds=0.5)
    try:
        bundle = running.gray_bundle("3")
        first = running.models.ModelUpdate()
        await first.write(
            model_pb2.ModelUpdateRequest(
                header=model_pb2.ModelUpdateHeader(
                    model_name="gray",
                    model_version="3",
                    bundle_size=bundle.stat().st_size,
                    bundle_sha256=sha256_of(bundle),
                )
            )
        )
        assert (await first.read()).stage == STAGES.Value("UPDATE_STAGE_RECEIVING")
        with pytest.raises(grpc.aio.AioRpcError) as busy:
            await push(running.models, bundle)
        assert busy.value.code() == grpc.StatusCode.ABORTED
        # The first stream now stays silent past the idle deadline.
        with pytest.raises(grpc.aio.AioRpcError) as idle:
            await first.read()
        assert idle.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        responses, _ = await push(running.models, bundle)  # the lock was released
        assert stage_names(responses)[-1] == "ACTIVE"
    finally:
        await stop_harness(running)


@pytest.mark.parametrize(
    ("header_fix", "fragment"),
    [
        ({"model_name": "../etc"}, "model_name"),
        ({"bundle_sha256": "xyz"}, "64 lowercase hex"),
        ({"bundle_size": 0}, "bundle_size must be > 0"),
    ],
)
async def test_bad_headers_are_invalid_argument(
    harness: Harness, header_fix: dict[str, object], fragment: str
) -> None:
    fields: dict[str, object] = {
        "model_name": "gray",
        "model_version": "3",
        "bundle_size": 10,
        "bundle_sha256": "0" * 64,
    }
    fields.update(header_fix)
    call = harness.models.ModelUpdate(
        iter([model_pb2.ModelUpdateRequest(header=model_pb2.ModelUpdateHeader(**fields))])
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in (caught.value.details() or "")
