"""`model-tools keygen --root / keyring / package --sequence` make bundles a --trust-root
gateway accepts; `edge-client push --allow-older` rolls back on purpose; every mistake
is one `model-tools: error:` line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateways import ThreadedGateway, gateway_settings
from tests.support.lifecycle import GRAY_MANIFEST
from tests.support.model_factory import linear_classifier

BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=300)


def ok(tool: str, *args: str) -> str:
    result = run(tool, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    work = tmp_path / "keys"
    ok("model-tools", "keygen", "--root", "--out", str(work / "root.key"))
    ok("model-tools", "keygen", "--out", str(work / "ci.key"))
    ok(
        "model-tools", "keyring", "--root-key", str(work / "root.key"),
        "--add-key", str(work / "ci.pub"), "--models", "gray", "--out", str(work / "keyring.json"),
    )  # fmt: skip
    return work


def package(keys: Path, version: str, sequence: int, *extra: str) -> Path:
    model = linear_classifier(keys.parent / f"src-{version}" / "model.onnx", seed=int(version) * 7)
    (model.parent / "manifest.json").write_text(
        json.dumps({"name": "gray", "version": version, **GRAY_MANIFEST})
    )
    bundle = keys.parent / f"gray-{version}.edgebundle"
    ok(
        "model-tools", "package", str(model), "-o", str(bundle), "--key", str(keys / "ci.key"),
        "--keyring", str(keys / "keyring.json"), "--sequence", str(sequence), "--golden",
        "random", *extra,
    )  # fmt: skip
    return bundle


@pytest.fixture
def gateway(model_root: Path, keys: Path) -> Iterator[ThreadedGateway]:
    settings = gateway_settings(
        model_root, trust_root=keys / "root.pub", trusted_keys=(), management_token="tok"
    )
    running = ThreadedGateway(settings)
    yield running
    running.stop()


def push(gateway: ThreadedGateway, bundle: Path, *extra: str) -> dict[str, object]:
    result = run(
        "edge-client", "push", str(bundle), "--target", gateway.target, "--token", "tok",
        "--json", "--quiet", *extra,
    )  # fmt: skip
    answer: dict[str, object] = json.loads(result.stdout)
    assert result.returncode == (0 if answer["accepted"] else 1), result.stderr
    return answer


def test_cli_bundles_install_and_older_ones_need_allow_older(
    gateway: ThreadedGateway, keys: Path
) -> None:
    v3, v4 = package(keys, "3", 3), package(keys, "4", 4)
    shown = json.loads(
        ok("model-tools", "verify", str(v3), "--trust-root", str(keys / "root.pub"), "--json")
    )
    assert (shown["sequence"], shown["keyring_version"], shown["name"]) == (3, 1, "gray")
    assert push(gateway, v4)["stage"] == "ACTIVE"
    refused = push(gateway, v3)
    assert refused["stage"] == "REJECTED"
    assert "older than installed sequence 4" in str(refused["reason"])
    assert push(gateway, v3, "--allow-older")["stage"] == "ACTIVE"


def test_verify_against_another_root_is_refused(keys: Path) -> None:
    result = run(
        "model-tools", "verify", str(package(keys, "3", 3)),
        "--trust-root", str(keys / "ci.pub"),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("model-tools: error: keyring is signed by ")


MISTAKES = {
    "keyring-needs-sequence": (
        ["package", "{model}", "-o", "{tmp}/x.edgebundle", "--key", "{keys}/ci.key",
         "--keyring", "{keys}/keyring.json"],
        "--keyring and --expires-in need --sequence N",
    ),
    "sequence-needs-key": (
        ["package", "{model}", "-o", "{tmp}/x.edgebundle", "--sequence", "2"],
        "--sequence needs --key",
    ),
    "sequence-zero": (
        ["package", "{model}", "-o", "{tmp}/x.edgebundle", "--key", "{keys}/ci.key",
         "--sequence", "0"],
        "sequence must be an integer >= 1",
    ),
    "uncertified-key": (
        ["package", "{model}", "-o", "{tmp}/x.edgebundle", "--key", "{keys}/root.key",
         "--keyring", "{keys}/keyring.json", "--sequence", "2"],
        "is not in keyring",
    ),
    "verify-without-trust": (["verify", "{tmp}/x.edgebundle"], "give --trusted-key FILE"),
    "keyring-version-down": (
        ["keyring", "--root-key", "{keys}/root.key", "--from", "{keys}/keyring.json",
         "--version", "1", "--out", "{tmp}/k.json"],
        "keyring version must be above 1",
    ),
    "keyring-wrong-root": (
        ["keyring", "--root-key", "{keys}/ci.key", "--from", "{keys}/keyring.json",
         "--out", "{tmp}/k.json"],
        "not by the trusted root key",
    ),
    "remove-unknown": (
        ["keyring", "--root-key", "{keys}/root.key", "--from", "{keys}/keyring.json",
         "--remove-key", "0123456789abcdef", "--out", "{tmp}/k.json"],
        "key 0123456789abcdef is not in the keyring",
    ),
    "certify-the-root": (
        ["keyring", "--root-key", "{keys}/root.key", "--add-key", "{keys}/root.pub",
         "--out", "{tmp}/k.json"],
        "is the root key",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_every_mistake_is_one_error_line(keys: Path, tmp_path: Path, case: str) -> None:
    model = linear_classifier(tmp_path / "m" / "model.onnx", seed=3)
    (model.parent / "manifest.json").write_text(
        json.dumps({"name": "gray", "version": "2", **GRAY_MANIFEST})
    )
    args, fragment = MISTAKES[case]
    filled = [a.format(model=model, tmp=tmp_path, keys=keys) for a in args]
    result = run("model-tools", *filled)
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("model-tools: error: ")
    assert fragment in result.stderr
