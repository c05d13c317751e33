"""User mistakes through the real ``model-tools`` CLI: one ``error:`` line on stderr, a
non-zero exit, never a traceback; and what works without the ``tools`` extra."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_tools.packaging import package_model
from tests.support.bundles import make_keys
from tests.support.digits_model import assert_clean_failure, run_cli
from tests.support.model_factory import linear_classifier, write_manifest

pytestmark = pytest.mark.slow
TOOLS = "pip install 'edge-inference-gateway[tools]'"
# What `pip install edge-inference-gateway` without [tools] lacks (onnxruntime is a base need).
TOOLS_MODULES = ("onnx", "onnxscript", "torch", "sklearn", "skimage", "tqdm")
BOOTSTRAP = (
    "import sys\n"
    f"for name in {TOOLS_MODULES!r}:\n"
    "    sys.modules[name] = None  # import fails as if not installed\n"
    "from model_tools.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def without_tools(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``model-tools ARGS`` in a Python where the tools extra's packages cannot import."""
    return subprocess.run(
        [sys.executable, "-c", BOOTSTRAP, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@dataclass(frozen=True)
class Workspace:
    model: Path
    bundle: Path
    key: Path
    public: Path
    folder: Path
    plain_file: Path
    missing: Path


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A real model with manifest, a signed bundle, keys, a folder and a non-key file."""
    model = linear_classifier(tmp_path / "gray" / "1" / "model.onnx")
    write_manifest(model.parent, name="gray", version="1")
    _, public = make_keys(tmp_path / "keys")
    key = public.with_suffix(".key")
    bundle = package_model(model, tmp_path / "gray-1.edgebundle", signing_key=key).path
    plain = tmp_path / "notes.txt"
    plain.write_text("not a key, not a folder\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    return Workspace(model, bundle, key, public, folder, plain, tmp_path / "missing")


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "{model}"),
        ("quantize", "{model}", "-o", "{missing}/q.onnx"),
        ("evaluate", "{model}", "--data", "{folder}"),
        ("bench", "{model}"),
        ("export", "model_tools.digits:DigitsCNN", "--input-shape", "1,1,28,28", "-o", "x.onnx"),
        ("package", "{model}", "-o", "{missing}/b.edgebundle"),
    ],
)
def test_commands_without_the_tools_extra_name_it_in_one_line(
    ws: Workspace, args: tuple[str, ...]
) -> None:
    done = without_tools(*(a.format(**vars(ws)) for a in args))
    assert_clean_failure(done, f"'model-tools {args[0]}' needs the tools extra", code=2)
    assert "(missing module '" in done.stderr and done.stderr.rstrip().endswith(TOOLS)


def test_help_version_and_signing_work_without_the_tools_extra(
    ws: Workspace, tmp_path: Path
) -> None:
    for args in (("--help",), ("export", "--help"), ("--version",)):
        done = without_tools(*args)
        assert done.returncode == 0 and not done.stderr, done.stderr
        assert "model-tools" in done.stdout
    other = tmp_path / "release" / "other.key"
    assert without_tools("keygen", "--out", other).returncode == 0
    resigned = tmp_path / "resigned.edgebundle"
    done = without_tools("sign", ws.bundle, "--key", other, "-o", resigned)
    assert done.returncode == 0, done.stderr
    done = without_tools("verify", resigned, "--trusted-key", other.with_suffix(".pub"))
    assert done.returncode == 0 and done.stdout.startswith("OK:"), done.stderr


EXPORT = ("export", "model_tools.digits:DigitsCNN", "--input-shape", "1,1,28,28")
MISTAKES = [
    # missing input files and folders
    (("inspect", "{missing}/m.onnx"), "ONNX model not found: ", 1),
    (("quantize", "{missing}/m.onnx", "-o", "{folder}/q.onnx"), "ONNX model not found", 1),
    (("bench", "{missing}/m.onnx"), "ONNX model not found", 1),
    (("evaluate", "{model}", "--data", "{missing}/data"), "dataset not found", 1),
    (("quantize", "{model}", "-o", "{folder}/q.onnx", "--calibration", "{missing}"),
     "calibration data not found", 1),
    (("package", "{missing}/m.onnx", "-o", "{folder}/b.edgebundle"), "ONNX model not found", 1),
    (("package", "{model}", "-o", "{folder}/b.edgebundle", "--golden", "{missing}"),
     "golden inputs not found", 1),
    (("package", "{model}", "-o", "{folder}/b.edgebundle", "--manifest", "{missing}/m.json"),
     "manifest not found", 1),
    (("package", "{model}", "-o", "{folder}/b.edgebundle", "--evaluation", "{missing}/e.json"),
     "evaluation file not found", 1),
    (("sign", "{missing}/b.edgebundle", "--key", "{key}"), "not found", 1),
    (("verify", "{missing}/b.edgebundle", "--trusted-key", "{public}"), "not found", 1),
    ((*EXPORT, "-o", "{folder}/m.onnx", "--checkpoint", "{missing}/w.pt"),
     "checkpoint not found", 1),
    ((*EXPORT, "-o", "{folder}/m.onnx", "--check-inputs", "{missing}/x.npy"),
     "array file not found", 1),
    (("export", "{missing}/net.pt", "--input-shape", "1,4", "-o", "{folder}/m.onnx"),
     "TorchScript file not found", 1),
    # unreadable key files
    (("package", "{model}", "-o", "{folder}/b.edgebundle", "--key", "{folder}"),
     "cannot read key file", 1),
    (("package", "{model}", "-o", "{folder}/b.edgebundle", "--key", "{plain_file}"),
     "not an Ed25519 private key", 1),
    (("sign", "{bundle}", "--key", "{folder}"), "cannot read key file", 1),
    (("sign", "{bundle}", "--key", "{public}"), "not an unencrypted PEM private key", 1),
    (("verify", "{bundle}", "--trusted-key", "{folder}"), "cannot read key file", 1),
    (("verify", "{bundle}", "--trusted-key", "{plain_file}"), "not an Ed25519 public key", 1),
    # bad --input-shape
    (("export", "x:y", "--input-shape", "1,a", "-o", "{folder}/m.onnx"),
     "argument --input-shape: expected comma-separated integers", 2),
    (("export", "x:y", "--input-shape", "0,4", "-o", "{folder}/m.onnx"),
     "argument --input-shape: expected positive integers", 2),
    # unknown module:factory
    (("export", "no_such_module:net", "--input-shape", "1,4", "-o", "{folder}/m.onnx"),
     "cannot import 'no_such_module'", 1),
    (("export", "model_tools.digits:Nope", "--input-shape", "1,4", "-o", "{folder}/m.onnx"),
     "has no attribute 'Nope'", 1),
    (("export", "no_colon", "--input-shape", "1,4", "-o", "{folder}/m.onnx"),
     "must be 'package.module:factory' or a TorchScript file", 1),
    # outputs that cannot be written (a file where a folder must be: root can write anywhere)
    ((*EXPORT, "-o", "{plain_file}/m.onnx"), "is not a folder", 2),
    (("quantize", "{model}", "-o", "{plain_file}/sub/q.onnx"), "is not a folder", 2),
    (("package", "{model}", "-o", "{plain_file}/b.edgebundle"), "is not a folder", 2),
    (("sign", "{bundle}", "--key", "{key}", "-o", "{plain_file}/b.edgebundle"),
     "is not a folder", 2),
    (("keygen", "--out", "{plain_file}/k.key"), "is not a folder", 2),
    (("verify", "{bundle}", "--trusted-key", "{public}", "--extract", "{plain_file}/x"),
     "is not a folder", 2),
    (("package", "{model}", "-o", "{folder}"), "is a folder", 2),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message", "code"), MISTAKES)
def test_user_mistakes_are_one_line(
    ws: Workspace, args: tuple[str, ...], message: str, code: int
) -> None:
    done = run_cli(*(a.format(**vars(ws)) for a in args))
    assert_clean_failure(done, message, code)
