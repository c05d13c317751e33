"""Key rotation and revocation end to end: bundles made by the real `model-tools`
(keygen --root, keyring, package --sequence --keyring), published and deployed by the
real `edge-orchestrator` to gateways with --trust-root. A bundle signed by a revoked key
shows up in the rollout as a failed target with the gateway's reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.model_factory import linear_classifier
from tests.support.orchestrator import GRAY_MANIFEST, cli, deploy, running_fleet

pytestmark = pytest.mark.slow

TOOLS = str(Path(sys.executable).parent / "model-tools")
IDS = ["gw-a", "gw-b"]


def tools(*args: str) -> None:
    result = subprocess.run([TOOLS, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def package(work: Path, version: str, key: str, sequence: int, keyring: Path) -> Path:
    model = linear_classifier(work / f"src-{version}" / "model.onnx", seed=int(version) * 10)
    (model.parent / "manifest.json").write_text(
        json.dumps({"name": "gray", "version": version, **GRAY_MANIFEST})
    )
    bundle = work / f"gray-{version}.edgebundle"
    tools(
        "package", str(model), "-o", str(bundle), "--key", str(work / f"{key}.key"),
        "--keyring", str(keyring), "--sequence", str(sequence),
    )  # fmt: skip
    return bundle


async def test_rotation_and_revocation_through_the_orchestrator(tmp_path: Path) -> None:
    work, artifacts = tmp_path / "work", tmp_path / "artifacts"
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    tools("keygen", "--root", "--out", str(work / "root.key"))
    for name in ("k1", "k2"):
        tools("keygen", "--out", str(work / f"{name}.key"))
    ring = work / "keyring.json"
    root = ("--root-key", str(work / "root.key"), "--out", str(ring))
    tools("keyring", *root, "--add-key", str(work / "k1.pub"))
    ring_v1 = work / "keyring-v1.json"
    ring_v1.write_bytes(ring.read_bytes())
    trusted = f"{work / 'k1.pub'},{work / 'k2.pub'}"  # the registry's own (legacy) check

    def publish(bundle: Path) -> None:
        cli("publish", str(bundle), "--trusted-keys", trusted, db=db, artifacts=artifacts)

    async def rollout(version: str) -> tuple[int, dict[str, object]]:
        return await deploy(
            db, artifacts, version, "--gateways", "all", "--strategy", "all",
            "--watch-seconds", "0.2", "--no-progress",
        )  # fmt: skip

    async with running_fleet(
        tmp_path / "fleet", IDS, work / "k1.pub", trust_root=work / "root.pub"
    ) as fleet:
        for gateway_id in IDS:
            cli(
                "gateways", "register", gateway_id, "--address", fleet.address(gateway_id),
                db=db, artifacts=artifacts,
            )  # fmt: skip

        publish(package(work, "2", "k1", 2, ring))
        code, record = await rollout("2")
        assert code == 0 and record["state"] == "SUCCEEDED", record

        # Rotation: keyring 2 adds k2, whose first bundle carries it.
        tools("keyring", *root, "--from", str(ring), "--add-key", str(work / "k2.pub"))
        publish(package(work, "3", "k2", 3, ring))
        code, record = await rollout("3")
        assert code == 0 and record["state"] == "SUCCEEDED", record

        # Revocation: keyring 3 drops k1 (say it leaked).
        tools("keyring", *root, "--from", str(ring), "--remove-key", str(work / "k1.pub"))
        publish(package(work, "4", "k2", 4, ring))
        code, record = await rollout("4")
        assert code == 0 and record["state"] == "SUCCEEDED", record

        # The thief signs a newer version with k1 and attaches the keyring that still lists it.
        publish(package(work, "5", "k1", 5, ring_v1))
        code, record = await rollout("5")
        assert code == 1, record
        targets = record["targets"]
        assert isinstance(targets, list)
        for target in targets:
            assert target["state"] == "FAILED"
            assert "REJECTED" in target["reason"]
            assert "keyring version 3 does not certify (revoked or never added)" in target["reason"]
        for gateway_id in IDS:
            assert await fleet.serving_version(gateway_id) == "4"
