"""Pull mode with --trust-root, real processes: an `edge-server --orchestrator` gateway
converges to a version signed under the keyring; a replayed older bundle and a bundle
of a revoked key are refused, and the rollout shows the gateway's reason. A refused
version is not fetched again while the desired state stays the same, and a new rollout
of it gets the refusal again instead of waiting out the pull timeout."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.signing import save_keypair
from tests.support.bundles import golden_for
from tests.support.model_factory import linear_classifier
from tests.support.orchestrator import (
    GRAY_MANIFEST,
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    until,
)
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway
from tests.support.trust import Release, build_trusted_bundle, entry, keyring

pytestmark = pytest.mark.slow

FAST = ("--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2", "--poll-seconds", "0.2")


@dataclass
class Registry:
    """The orchestrator's database and artifacts, and the keys bundles are signed with."""

    db: str
    artifacts: Path
    work: Path
    legacy_keys: str  # what `publish --trusted-keys` checks (the legacy signature)

    def publish(self, version: str, release: Release) -> None:
        model = linear_classifier(self.work / f"src-{version}" / "model.onnx", seed=int(version))
        bundle = build_trusted_bundle(
            self.work / f"gray-{version}.edgebundle",
            model,
            "gray",
            version,
            release,
            GRAY_MANIFEST,
            golden_for(model),
        )
        self.run("publish", str(bundle), "--trusted-keys", self.legacy_keys)

    def run(self, *args: str) -> str:
        return cli(*args, db=self.db, artifacts=self.artifacts).stdout

    def deploy(self, version: str) -> dict[str, Any]:
        """`deploy gray VERSION` to the gateway, run by this CLI process to its end."""
        result = cli(
            "deploy", "gray", version, "--gateways", "id=edge-7", "--watch-seconds", "0.5",
            "--json", db=self.db, artifacts=self.artifacts, check=False,
        )  # fmt: skip
        record: dict[str, Any] = json.loads(result.stdout)
        assert result.returncode == (0 if record["state"] == "SUCCEEDED" else 1), result.stderr
        return record

    def shown(self, rollout_id: str) -> dict[str, Any]:
        record: dict[str, Any] = cli_json(
            "rollout", rollout_id, db=self.db, artifacts=self.artifacts
        )
        return record


def _save(key: Ed25519PrivateKey, folder: Path, name: str) -> Path:
    save_keypair(key, folder / f"{name}.key", folder / f"{name}.pub")
    return folder / f"{name}.pub"


def test_pull_gateway_with_a_trust_root(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    root, k1, k2 = (Ed25519PrivateKey.generate() for _ in range(3))
    root_pub = _save(root, keys, "root")
    k1_pub, k2_pub = _save(k1, keys, "k1"), _save(k2, keys, "k2")
    registry = Registry(
        f"sqlite:///{tmp_path / 'orchestrator.db'}",
        tmp_path / "artifacts",
        tmp_path / "work",
        f"{k1_pub},{k2_pub}",
    )
    ring_v1 = keyring(root, 1, entry(k1))
    registry.publish("2", Release(k1, 2, ring_v1))
    registry.publish("3", Release(k1, 3, ring_v1))
    registry.run("assign", "gray", "--gateways", "site=lab", "--version", "latest")
    orchestrator = OrchestratorProcess(registry.db, registry.artifacts, *FAST)
    models = tmp_path / "models"
    gateway = None
    try:
        gateway = start_pull_gateway(
            gray_root(models),
            orchestrator.target,
            Publisher(k1, k1_pub, registry.work),
            "--trust-root",
            str(root_pub),
        )
        # Converges to the latest version, signed under the keyring it carries.
        until(lambda: serving_version(gateway.target) == "3", timeout=60)
        trust = models / ".trust"
        assert json.loads((trust / "sequences.json").read_text())["models"]["gray"]["sequence"] == 3
        assert json.loads((trust / "keyring.json").read_text())["signed"]["version"] == 1

        # Replay: version 2 (sequence 2) is published and validly signed, but older.
        replay = registry.deploy("2")
        [target] = replay["targets"]
        assert replay["state"] == "HALTED" and target["state"] == "FAILED", replay
        assert target["reason"].startswith("REJECTED: "), target
        assert "has sequence 2, older than installed sequence 3" in target["reason"]
        assert serving_version(gateway.target) == "3"
        ledger = json.loads((models / "gray" / "versions.json").read_text())["versions"]
        assert ledger["2"]["state"] == "REJECTED"

        # Terminal while the desired state stays 2: not fetched and refused again.
        time.sleep(3)
        refusals = [line for line in gateway.log if "model gray version 2 rejected" in line]
        assert len(refusals) == 1, refusals
        inventory = cli_json("gateways", db=registry.db, artifacts=registry.artifacts)
        assert inventory[0]["models"][0] == {
            "model": "gray",
            "desired": "2",
            "running": "3",
            "drift": True,
        }

        # A new rollout of the same version is a new desired state: it gets the refusal
        # (checked again by the gateway), not a pull timeout.
        started = time.monotonic()
        again = registry.deploy("2")
        assert time.monotonic() - started < 60
        [target] = again["targets"]
        assert target["state"] == "FAILED", again
        assert "older than installed sequence 3" in target["reason"]
        assert registry.shown(again["id"])["targets"][0]["reason"] == target["reason"]

        # Rotation to k2 with keyring 2, which revokes k1.
        ring_v2 = keyring(root, 2, entry(k2))
        registry.publish("4", Release(k2, 4, ring_v2))
        assert registry.deploy("4")["state"] == "SUCCEEDED"
        assert serving_version(gateway.target) == "4"
        assert json.loads((trust / "keyring.json").read_text())["signed"]["version"] == 2

        # The thief signs a newer version with k1, carrying the keyring that still lists it.
        registry.publish("5", Release(k1, 5, ring_v1))
        stolen = registry.deploy("5")
        [target] = stolen["targets"]
        assert target["state"] == "FAILED", stolen
        assert target["reason"].startswith("REJECTED: ")
        assert "keyring version 2 does not certify (revoked or never added)" in target["reason"]
        assert serving_version(gateway.target) == "4"
    finally:
        if gateway is not None:
            assert gateway.terminate() == 0
        orchestrator.terminate()
