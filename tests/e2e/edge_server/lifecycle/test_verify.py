"""Every verification failure is REJECTED with a reason; the active version keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_contracts.bundle.golden import encode_golden
from edge_contracts.proto.edge.v1 import model_pb2, types_pb2
from tests.support.bundles import build_bundle, golden_for, make_keys, push
from tests.support.lifecycle import GRAY_MANIFEST, Harness, harness  # noqa: F401
from tests.support.model_factory import linear_classifier

REJECTED = model_pb2.UPDATE_STAGE_REJECTED


def _bad_golden(model: Path) -> tuple[bytes, dict[str, Any]]:
    _, description = golden_for(model)
    inputs = np.zeros((2, 1, 8, 8), np.float32)
    wrong = {"logits": np.full((2, 10), 123.0, np.float32)}
    return encode_golden({"input": inputs}, wrong), description


def _case(harness: Harness, case: str) -> tuple[Path, dict[str, Any]]:
    """Returns the bundle and extra push() arguments for a failure case."""
    work = harness.workdir
    good = harness.gray_bundle("3")
    if case == "corrupted-chunk":
        return good, {"corrupt_at": good.stat().st_size // 2}
    if case == "wrong-sha256":
        return good, {"declared_sha": "ab" * 32}
    if case == "foreign-signature":
        other, _ = make_keys(work / "other", "intruder")
        model = linear_classifier(work / "o" / "model.onnx", seed=77)
        return build_bundle(
            work / "foreign.edgebundle", model, "gray", "3", other, GRAY_MANIFEST
        ), {}
    if case == "unsigned":
        model = linear_classifier(work / "u" / "model.onnx", seed=78)
        return build_bundle(
            work / "unsigned.edgebundle", model, "gray", "3", None, GRAY_MANIFEST
        ), {}
    if case == "not-onnx":
        return build_bundle(
            work / "junk.edgebundle",
            b"\x00 definitely not onnx",
            "gray",
            "3",
            harness.key,
            GRAY_MANIFEST,
        ), {}
    if case == "incompatible-signature":
        model = linear_classifier(work / "i" / "model.onnx", channels=1, size=8, classes=7)
        return build_bundle(
            work / "incompatible.edgebundle",
            model,
            "gray",
            "3",
            harness.key,
            {**GRAY_MANIFEST, "labels": [str(i) for i in range(7)]},
        ), {}
    if case == "golden-mismatch":
        model = linear_classifier(work / "g" / "model.onnx", seed=79)
        return build_bundle(
            work / "golden.edgebundle",
            model,
            "gray",
            "3",
            harness.key,
            GRAY_MANIFEST,
            _bad_golden(model),
        ), {}
    if case == "name-mismatch":
        model = linear_classifier(work / "n" / "model.onnx", seed=80)
        bundle = build_bundle(
            work / "other-name.edgebundle", model, "gray", "4", harness.key, GRAY_MANIFEST
        )
        return bundle, {}
    raise AssertionError(case)


CASES = {
    "corrupted-chunk": "bytes were corrupted in transit",
    "wrong-sha256": "the header said abababab",
    "foreign-signature": "not among the trusted keys",
    "unsigned": "is not signed",
    "not-onnx": "cannot load",
    "incompatible-signature": "breaking_change",
    "golden-mismatch": "golden samples do not reproduce",
}


@pytest.mark.parametrize(("case", "fragment"), list(CASES.items()), ids=list(CASES))
async def test_rejected_while_old_version_serves(
    harness: Harness, model_root: Path, case: str, fragment: str
) -> None:
    bundle, options = _case(harness, case)
    responses, _ = await push(harness.models, bundle, **options)
    final = responses[-1]
    assert final.stage == REJECTED, responses
    assert fragment in final.reason
    assert await harness.predict_version() == "2"
    assert not (model_root / "gray" / "3").exists()
    assert not [p for p in (model_root / "gray").iterdir() if p.name.startswith(".staging")]
    listed = await harness.models.ListModels(model_pb2.ListModelsRequest(model_name="gray"))
    record = next(v for v in listed.models[0].versions if v.version == "3")
    assert record.state == types_pb2.MODEL_STATE_REJECTED and fragment in record.reason
    metrics = harness.gateway.metrics.render().decode()
    assert 'edge_model_rejections_total{model="gray"} 1.0' in metrics


async def test_breaking_change_declared_is_accepted(harness: Harness) -> None:
    model = linear_classifier(harness.workdir / "b" / "model.onnx", classes=7)
    bundle = build_bundle(
        harness.workdir / "breaking.edgebundle",
        model,
        "gray",
        "3",
        harness.key,
        {**GRAY_MANIFEST, "labels": [str(i) for i in range(7)], "breaking_change": True},
    )
    responses, _ = await push(harness.models, bundle)
    assert responses[-1].stage == model_pb2.UPDATE_STAGE_ACTIVE
    assert await harness.predict_version() == "3"


async def test_push_with_mismatched_header_version_is_rejected(harness: Harness) -> None:
    bundle, _ = _case(harness, "name-mismatch")
    # push() reads name/version from the bundle; lie in the header via a renamed copy.
    import hashlib

    data = bundle.read_bytes()
    call = harness.models.ModelUpdate()
    await call.write(
        model_pb2.ModelUpdateRequest(
            header=model_pb2.ModelUpdateHeader(
                model_name="gray",
                model_version="3",
                bundle_size=len(data),
                bundle_sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    )
    await call.read()
    await call.write(
        model_pb2.ModelUpdateRequest(chunk=model_pb2.ModelUpdateChunk(offset=0, data=data))
    )
    await call.read()
    await call.write(model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit()))
    await call.done_writing()
    from tests.support.bundles import _rest

    answers = [message async for message in _rest(call)]
    last = answers[-1]
    assert last.stage == REJECTED
    assert "header says gray version 3" in last.reason
