"""A rejected push's reason names what the user sent (model:version, the bundle, a file in
it), never where the gateway keeps it (MODEL_ROOT/.incoming/*.part, .staging-* folders)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_contracts.bundle.signing import sign_manifest
from edge_contracts.bundle.writer import file_entry, write_bundle
from edge_contracts.proto.edge.v1 import inference_pb2, model_pb2
from tests.support.bundles import GOLDEN_PATH, build_bundle, push
from tests.support.lifecycle import GRAY_MANIFEST, Harness, harness  # noqa: F401
from tests.support.model_factory import linear_classifier

INTERNAL = (".incoming", ".part", ".staging", ".trash")


def _bundle(running: Harness, case: str, name: str) -> Path:
    """A bundle of ``name`` version 3 that fails verification the way ``case`` says."""
    work = running.workdir / case
    model = linear_classifier(work / "model.onnx", seed=31)
    key = running.key
    manifest: dict[str, Any] = dict(GRAY_MANIFEST)
    golden: tuple[bytes, dict[str, Any]] | None = None
    if case == "unsigned":
        key = None  # type: ignore[assignment]
    elif case == "not-onnx":
        model = work / "junk.onnx"
        model.write_bytes(b"\x00 not an onnx model")
    elif case == "bad-preprocessing":
        return _signed_as_is(running, work, model, name, color_mode="CMYK")
    elif case == "unreadable-golden":
        golden = (b"not an npz file", {"path": GOLDEN_PATH})
    bundle = build_bundle(work / "b.edgebundle", model, name, "3", key, manifest, golden)
    if case == "truncated":  # cut in the middle of the model file
        bundle.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    elif case == "not-a-tar":
        bundle.write_bytes(b"these bytes are no tar archive" * 40)
    return bundle


def _signed_as_is(running: Harness, work: Path, model: Path, name: str, color_mode: str) -> Path:
    """A signed bundle whose manifest skipped the writer's validation (as a foreign or
    older packaging tool could produce)."""
    preprocessing = {**GRAY_MANIFEST["preprocessing"], "color_mode": color_mode}
    document = {
        **GRAY_MANIFEST, "preprocessing": preprocessing, "name": name, "version": "3",
        "format_version": 1, "files": {"model.onnx": file_entry(model)},
    }  # fmt: skip
    manifest = json.dumps(document).encode()
    signature = sign_manifest(manifest, running.key).encode()
    return write_bundle(work / "b.edgebundle", manifest, {"model.onnx": model}, signature)


CASES = {
    "unsigned": "bundle {model}:3 is not signed",
    "not-onnx": "ONNX Runtime cannot load {model}:3/model.onnx",
    "bad-preprocessing": "bundle manifest: preprocessing.color_mode",
    "unreadable-golden": f"{{model}}:3/{GOLDEN_PATH}: golden samples must be an .npz archive",
    "truncated": "bundle {model}:3: corrupt tar",
    "not-a-tar": "bundle {model}:3 is not an uncompressed tar bundle",
}


@pytest.mark.parametrize("model", ["gray", "fresh"], ids=["served-model", "new-model"])
@pytest.mark.parametrize(("case", "fragment"), list(CASES.items()), ids=list(CASES))
async def test_rejection_reason_names_what_was_sent(
    harness: Harness, model_root: Path, model: str, case: str, fragment: str
) -> None:
    bundle = _bundle(harness, case, model)
    responses, _ = await push(harness.models, bundle, identity=(model, "3"))
    final = responses[-1]
    assert final.stage == model_pb2.UPDATE_STAGE_REJECTED, responses
    listed = await harness.models.ListModels(model_pb2.ListModelsRequest(model_name=model))
    record = next(v for v in listed.models[0].versions if v.version == "3")
    health = await harness.inference.Health(inference_pb2.HealthRequest())
    last_errors = [m.last_error for m in health.models]
    for text in (final.reason, record.reason, *last_errors):
        assert str(model_root) not in text and str(harness.workdir) not in text, text
        assert not any(part in text for part in INTERNAL), text
    assert fragment.format(model=model) in final.reason
    assert record.reason == final.reason
