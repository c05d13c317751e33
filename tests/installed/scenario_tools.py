"""The [tools] virtualenv's `model-tools`, as the README's Model tools section runs it:
export a torch model of the user's own module, quantize it (static INT8 with calibration
data), evaluate FP32 against INT8, make a key, package a signed bundle with golden samples,
verify it. Also the digits version 2 bundle the gateway steps push (a stand-in while the
tree ships none)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.installed.commands import call, expect, failed, ok, ok_json
from tests.installed.workspace import Workspace

FP32 = Path("new-models/tiny/1/model.onnx")
INT8 = Path("new-models/tiny-int8/1/model.onnx")
KEY = Path("new-keys/release.key")
BUNDLE = Path("tiny-int8-1.edgebundle")
LABELS = ",".join(str(digit) for digit in range(10))
MIN_TOP1 = 0.5  # the nearest-centroid model scores about 0.89; chance is 0.1
DIGITS_2 = Path("bundles/digits-2.edgebundle")
STAND_IN = Path("stand-in/digits-2.edgebundle")


def model_tools(ws: Workspace, *args: str | Path) -> list[str]:
    return [ws.venvs["tools"].script("model-tools"), *map(str, args)]


def manifest_of(model: Path) -> dict[str, object]:
    document: dict[str, object] = json.loads((model.parent / "manifest.json").read_text())
    return document


def export(ws: Workspace) -> str:
    """`mymodel:build` is a module in the current folder, found without PYTHONPATH."""
    report = ok_json(
        model_tools(ws, "export", "mymodel:build", "--input-shape", "1,1,28,28", "-o", FP32,
                    "--mean", "0.5", "--std", "0.5", "--labels", LABELS, "--no-progress", "--json")
    )  # fmt: skip
    expect(FP32.is_file(), f"export reported success but wrote no {FP32}")
    manifest = manifest_of(FP32)
    expect(
        (manifest.get("name"), manifest.get("version")) == ("tiny", "1"),
        f"{FP32.parent}/manifest.json names {manifest.get('name')}:{manifest.get('version')}",
    )
    return (
        f"{FP32} ({report['exporter']}, opset {report['opset']}, "
        f"max |onnx - torch| {report['max_abs_diff']:.1e}), manifest tiny:1"
    )


def quantize(ws: Workspace) -> str:
    report = ok_json(
        model_tools(ws, "quantize", FP32, "-o", INT8, "--mode", "static", "--calibration",
                    "data/digits-calib.npz", "--method", "minmax", "--no-progress", "--json")
    )  # fmt: skip
    ops = report.get("op_histogram", {})
    expect(INT8.is_file(), f"quantize reported success but wrote no {INT8}")
    expect(report.get("mode") == "static", f"quantize ran mode {report.get('mode')}, not static")
    expect(ops.get("QuantizeLinear", 0) > 0, f"no QuantizeLinear node in {INT8}: {ops}")
    return f"{INT8}: static QDQ, {report['size_before']} -> {report['size_after']} bytes"


def int8_is_its_own_model(ws: Workspace) -> str:
    """Quantized, `tiny` version 1 becomes `tiny-int8` version 1 (docs/manifest.md): its
    bundle must not replace the FP32 model of the same name and version."""
    manifest = manifest_of(INT8)
    seen = (manifest.get("name"), manifest.get("version"))
    expect(seen == ("tiny-int8", "1"), f"{INT8.parent}/manifest.json names {seen[0]}:{seen[1]}")
    return f"{INT8.parent}/manifest.json: tiny-int8:1"


def evaluate(ws: Workspace) -> str:
    report = ok_json(
        model_tools(ws, "evaluate", FP32, INT8, "--data", "data/digits-test.npz",
                    "--max-drop", "1.0", "--no-progress", "--json")
    )  # fmt: skip
    scores = {Path(row["model"]).as_posix(): row["top1"] for row in report["scores"]}
    expect(report.get("passed") is True, f"the INT8 gate failed: {report}")
    expect(min(scores.values()) > MIN_TOP1, f"top-1 {scores} on {report['samples']} samples")
    return (
        f"{report['samples']} samples: FP32 top-1 {scores[FP32.as_posix()]:.3f}, INT8 "
        f"{scores[INT8.as_posix()]:.3f}, drop {report['delta_top1_points']:.2f} points (max 1.0)"
    )


def keygen(ws: Workspace) -> str:
    report = ok_json(model_tools(ws, "keygen", "--out", KEY, "--json"))
    public = Path(report["public_key"])
    expect(KEY.is_file() and public.is_file(), f"keygen wrote {report}, files missing")
    ws.new_key = public
    return f"{KEY} + {public} (key id {report['key_id']})"


def package(ws: Workspace) -> str:
    """The INT8 model, signed, with golden samples from the sample images."""
    report = ok_json(
        model_tools(ws, "package", INT8, "-o", BUNDLE, "--key", KEY, "--golden", "images", "--json")
    )
    files = report.get("files", {})
    expect(BUNDLE.is_file(), f"package reported success but wrote no {BUNDLE}")
    expect(report.get("signed_by"), f"{BUNDLE} is not signed: {report}")
    expect(any(name.startswith("golden/") for name in files), f"no golden samples: {files}")
    ws.new_bundle = BUNDLE.resolve()
    ws.new_model = (str(report["name"]), str(report["version"]))
    return f"{BUNDLE}: {report['name']}:{report['version']}, files {files}"


def verify(ws: Workspace) -> str:
    """Accepted with the new key; refused (cleanly) with the demo key."""
    assert ws.new_key is not None
    ok(model_tools(ws, "verify", BUNDLE, "--trusted-key", ws.new_key))
    wrong = call(model_tools(ws, "verify", BUNDLE, "--trusted-key", "keys/demo-signing.pub"))
    if wrong.returncode == 0 or "Traceback" in wrong.stderr:
        raise failed(wrong, "a bundle signed by another key must be refused without a traceback")
    return (
        f"verified with {ws.new_key}; refused with keys/demo-signing.pub ({wrong.stderr.strip()})"
    )


def digits_2(ws: Workspace) -> str:
    """examples/bundles/digits-2.edgebundle when the committed tree ships it; else a
    stand-in: the demo model packaged as digits version 2, signed by the demo key."""
    assert ws.source is not None
    if (ws.source / "examples" / DIGITS_2).is_file():
        ws.digits_2 = DIGITS_2.resolve()
        return f"{DIGITS_2} shipped by the tree"
    ok(
        model_tools(ws, "package", "models/digits/1/model.onnx", "-o", STAND_IN, "--key",
                    "keys/demo-signing.key", "--name", "digits", "--model-version", "2",
                    "--golden", "images")
    )  # fmt: skip
    ws.digits_2 = STAND_IN.resolve()
    return f"STAND-IN {STAND_IN}: the tree ships no {DIGITS_2}; models/digits/1 as digits:2"
