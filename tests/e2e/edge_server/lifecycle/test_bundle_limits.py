"""Security review findings 1-3 against a real gateway: a golden-sample bomb, a sparse tar
member under a small disk quota and deeply nested JSON are each REJECTED with a reason,
leave nothing behind, and the gateway keeps serving; abandoned uploads expire."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from edge_contracts.bundle.signing import sign_manifest
from edge_contracts.bundle.writer import build_manifest_bytes, file_entry
from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2, types_pb2
from edge_server.lifecycle.uploads import STALE_UPLOAD_SECONDS, tree_size
from tests.support.bundle_bombs import (
    nested_json,
    peak_rss_bytes,
    regular_member,
    reset_peak_rss,
    sparse_member,
    tar_of,
    zeros_npz,
)
from tests.support.bundles import GOLDEN_PATH, build_bundle, golden_for, push
from tests.support.lifecycle import GRAY_MANIFEST, Harness, harness, start_harness, stop_harness  # noqa: F401
from tests.support.model_factory import linear_classifier

REJECTED = model_pb2.UPDATE_STAGE_REJECTED
_MIB = 1 << 20


async def _rejection_listed(running: Harness, version: str) -> str:
    listed = await running.models.ListModels(model_pb2.ListModelsRequest(model_name="gray"))
    record = next(v for v in listed.models[0].versions if v.version == version)
    assert record.state == types_pb2.MODEL_STATE_REJECTED
    return str(record.reason)


async def _still_serving(running: Harness) -> None:
    health = await running.inference.Health(inference_pb2.HealthRequest())
    assert health.status == inference_pb2.SERVING_STATUS_SERVING
    assert await running.predict_version() == "2"


def _leftovers(model_root: Path) -> list[Path]:
    parts = list((model_root / ".incoming").glob("*"))
    return parts + [p for p in (model_root / "gray").iterdir() if p.name.startswith(".staging")]


async def test_a_golden_bomb_is_rejected_with_bounded_memory(
    harness: Harness, model_root: Path
) -> None:
    model = linear_classifier(harness.workdir / "bomb" / "model.onnx", seed=41)
    golden = (zeros_npz(1024), {"path": GOLDEN_PATH})  # ~1 MB holding 1 GiB of zeros
    bundle = build_bundle(
        harness.workdir / "bomb.edgebundle", model, "gray", "3", harness.key, GRAY_MANIFEST, golden
    )
    assert bundle.stat().st_size < 2 * _MIB
    reset_peak_rss()  # the gateway runs in this process
    start = peak_rss_bytes()
    responses, _ = await push(harness.models, bundle)
    growth = peak_rss_bytes() - start
    final = responses[-1]
    assert final.stage == REJECTED, responses
    assert "golden array 'in.input.npy' decompresses to 1073741952 bytes" in final.reason
    assert await _rejection_listed(harness, "3") == final.reason
    await _still_serving(harness)
    assert growth < 100 * _MIB, f"peak RSS grew by {growth / _MIB:.0f} MiB"
    assert not _leftovers(model_root)


def _sparse_bundle(running: Harness, real_size: int) -> Path:
    """Signed, with a manifest that truly describes a ``real_size`` file of zeros, stored
    as a GNU sparse member of 512 bytes."""
    model = linear_classifier(running.workdir / "sparse" / "model.onnx", seed=43)
    blob = bytes(real_size)
    document = {"name": "gray", "version": "3", **GRAY_MANIFEST}
    manifest = build_manifest_bytes(document, {"model.onnx": model, "blob.bin": blob})
    assert json.loads(manifest)["files"]["blob.bin"] == file_entry(blob)
    signature = sign_manifest(manifest, running.key).encode()
    path = running.workdir / "sparse.edgebundle"
    path.write_bytes(
        tar_of(
            regular_member("manifest.json", manifest),
            regular_member("signature", signature),
            regular_member("model.onnx", model.read_bytes()),
            sparse_member("blob.bin", real_size),
        )
    )
    return path


async def test_a_sparse_member_under_a_small_quota_is_rejected(
    model_root: Path, tmp_path: Path
) -> None:
    running = await start_harness(model_root, tmp_path / "q", disk_quota_bytes=5_000_000)
    try:
        bundle = _sparse_bundle(running, 20_000_000)
        assert bundle.stat().st_size < 20_000
        before = tree_size(model_root)
        responses, _ = await push(running.models, bundle)
        final = responses[-1]
        assert final.stage == REJECTED, responses
        assert "bundle member 'blob.bin' is a sparse file" in final.reason
        assert await _rejection_listed(running, "3") == final.reason
        assert tree_size(model_root) - before < 64 * 1024  # the ledger entry, nothing more
        assert not list(model_root.rglob("blob.bin"))
        assert not _leftovers(model_root)
        await _still_serving(running)
    finally:
        await stop_harness(running)


def _nested_bundle(running: Harness, where: str) -> Path:
    model = linear_classifier(running.workdir / "deep" / "model.onnx", seed=45)
    if where == "manifest":
        manifest = b'{"name": "gray", "version": "3", "x": ' + nested_json(10_000) + b"}"
        signature = sign_manifest(manifest, running.key).encode()
    else:
        document = {"name": "gray", "version": "3", **GRAY_MANIFEST}
        manifest = build_manifest_bytes(document, {"model.onnx": model})
        signature = b"[" * 4000  # within the 4096-byte signature limit
    path = running.workdir / f"deep-{where}.edgebundle"
    path.write_bytes(
        tar_of(
            regular_member("manifest.json", manifest),
            regular_member("signature", signature),
            regular_member("model.onnx", model.read_bytes()),
        )
    )
    return path


@pytest.mark.parametrize("where", ["manifest", "signature"])
async def test_deeply_nested_json_is_rejected_not_unknown(
    harness: Harness, model_root: Path, where: str
) -> None:
    bundle = _nested_bundle(harness, where)
    responses, _ = await push(harness.models, bundle, identity=("gray", "3"))  # no AioRpcError
    final = responses[-1]
    assert final.stage == REJECTED, responses
    assert f"bundle {where} nests arrays/objects" in final.reason
    assert "the limit is 32" in final.reason
    assert await _rejection_listed(harness, "3") == final.reason
    assert not _leftovers(model_root)
    await _still_serving(harness)


async def test_an_abandoned_upload_expires(model_root: Path, tmp_path: Path) -> None:
    incoming = model_root / ".incoming"
    incoming.mkdir()
    stale = incoming / f"gray--7--{'a' * 32}.part"
    recent = incoming / f"gray--8--{'b' * 32}.part"
    for path in (stale, recent):
        path.write_bytes(bytes(4096))
    old = time.time() - STALE_UPLOAD_SECONDS - 60
    os.utime(stale, (old, old))
    running = await start_harness(model_root, tmp_path / "w")
    try:
        assert not stale.exists()  # removed at start
        assert recent.exists()  # kept: a push after a restart resumes it
        os.utime(recent, (old, old))  # now abandoned while the gateway runs
        bundle = running.gray_bundle("3")
        responses, _ = await push(running.models, bundle)  # a new upload begins
        assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE, responses
        assert not recent.exists()
    finally:
        await stop_harness(running)


async def test_golden_samples_over_several_batches_pass(harness: Harness) -> None:
    model = linear_classifier(harness.workdir / "many" / "model.onnx", seed=47)
    golden = golden_for(model, count=20)  # 8 + 8 + 4 rows per session.run
    bundle = build_bundle(
        harness.workdir / "many.edgebundle", model, "gray", "3", harness.key, GRAY_MANIFEST, golden
    )
    responses, _ = await push(harness.models, bundle)
    assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE, responses
    assert await harness.predict_version() == "3"
