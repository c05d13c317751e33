"""`model-tools sign` keeps trust metadata: with --keyring --sequence it writes signed
targets as `package` does; on a bundle that carries targets, a legacy-only re-signature
(which a --trust-root gateway refuses) needs --legacy, else it is one error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.lifecycle import GRAY_MANIFEST
from tests.support.model_factory import linear_classifier

BIN = Path(sys.executable).parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "model-tools"), *args], capture_output=True, text=True, timeout=300
    )


def ok(*args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("model-tools: error: ")
    return result.stderr


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """A root, two signing keys (ci, ci2) and keyring.json certifying both."""
    work = tmp_path / "keys"
    ok("keygen", "--root", "--out", str(work / "root.key"))
    for name in ("ci", "ci2"):
        ok("keygen", "--out", str(work / f"{name}.key"))
    ok(
        "keyring", "--root-key", str(work / "root.key"), "--add-key", str(work / "ci.pub"),
        "--add-key", str(work / "ci2.pub"), "--out", str(work / "keyring.json"),
    )  # fmt: skip
    return work


def package(keys: Path, *trust: str) -> Path:
    model = linear_classifier(keys.parent / "src" / "model.onnx", seed=5)
    (model.parent / "manifest.json").write_text(
        json.dumps({"name": "gray", "version": "2", **GRAY_MANIFEST})
    )
    bundle = keys.parent / "gray-2.edgebundle"
    ok("package", str(model), "-o", str(bundle), "--key", str(keys / "ci.key"), *trust)
    return bundle


def verify_trusted(keys: Path, bundle: Path) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(
        ok("verify", str(bundle), "--trust-root", str(keys / "root.pub"), "--json")
    )
    return shown


def test_sign_with_keyring_and_sequence_writes_targets(keys: Path, tmp_path: Path) -> None:
    bundle = package(keys, "--keyring", str(keys / "keyring.json"), "--sequence", "2")
    before = verify_trusted(keys, bundle)
    resigned = tmp_path / "resigned.edgebundle"

    sign = (
        "sign", str(bundle), "--key", str(keys / "ci2.key"), "-o", str(resigned),
        "--keyring", str(keys / "keyring.json"), "--sequence", "3", "--expires-in", "7",
    )  # fmt: skip
    shown = json.loads(ok(*sign, "--json"))

    after = verify_trusted(keys, resigned)
    assert (after["sequence"], after["keyring_version"], after["name"]) == (3, 1, "gray")
    assert after["key_id"] == shown["key_id"] != before["key_id"]
    assert shown["sequence"] == 3
    assert after["expires"] < before["expires"]  # 7 days instead of the default 90
    assert after["files"] == before["files"]


def test_sign_adds_targets_to_a_legacy_bundle(keys: Path) -> None:
    bundle = package(keys)  # legacy signature only
    one_error_line(run("verify", str(bundle), "--trust-root", str(keys / "root.pub")))

    ok(
        "sign", str(bundle), "--key", str(keys / "ci.key"),
        "--keyring", str(keys / "keyring.json"), "--sequence", "4",
    )  # fmt: skip

    assert verify_trusted(keys, bundle)["sequence"] == 4


def test_sign_without_keyring_refuses_to_drop_targets(keys: Path) -> None:
    bundle = package(keys, "--keyring", str(keys / "keyring.json"), "--sequence", "2")
    original = bundle.read_bytes()

    for trust in ((), ("--sequence", "3")):
        error = one_error_line(run("sign", str(bundle), "--key", str(keys / "ci.key"), *trust))
        assert "carries signed targets metadata (sequence 2)" in error
        assert "would drop that freshness metadata" in error
        assert "--legacy" in error
        assert bundle.read_bytes() == original  # nothing written

    # --legacy on purpose: a legacy signature that legacy gateways still accept.
    ok("sign", str(bundle), "--key", str(keys / "ci.key"), "--legacy")
    error = one_error_line(run("verify", str(bundle), "--trust-root", str(keys / "root.pub")))
    assert "has no signed targets metadata" in error
    ok("verify", str(bundle), "--trusted-key", str(keys / "ci.pub"))


MISTAKES = {
    "legacy-with-keyring": (
        ["--legacy", "--keyring", "{keys}/keyring.json", "--sequence", "3"],
        "--legacy writes a legacy signature only",
    ),
    "keyring-needs-sequence": (
        ["--keyring", "{keys}/keyring.json"],
        "--keyring and --expires-in need --sequence N",
    ),
    "expires-needs-sequence": (["--expires-in", "3"], "need --sequence N"),
    "sequence-zero": (
        ["--keyring", "{keys}/keyring.json", "--sequence", "0"],
        "sequence must be an integer >= 1",
    ),
    "uncertified-key": (
        ["--key", "{keys}/root.key", "--keyring", "{keys}/keyring.json", "--sequence", "3"],
        "is not in keyring",
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_every_sign_mistake_is_one_error_line(keys: Path, case: str) -> None:
    bundle = package(keys, "--keyring", str(keys / "keyring.json"), "--sequence", "2")
    original = bundle.read_bytes()
    extra, fragment = MISTAKES[case]
    filled = [a.format(keys=keys) for a in extra]
    args = [
        "sign",
        str(bundle),
        *(["--key", str(keys / "ci.key")] if "--key" not in filled else []),
    ]
    assert fragment in one_error_line(run(*args, *filled))
    assert bundle.read_bytes() == original
