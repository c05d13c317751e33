"""A gateway with --trust-root: each attack of docs/security.md reproduced, then refused.

Replay of an older bundle (rollback), a stale bundle (expired metadata), a revoked key,
a keyring rolled back or signed by another root, legacy signatures; what the gateway
remembers (keyring version, highest sequence per model) survives a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.signing import save_keypair
from edge_contracts.proto.edge.v1 import model_pb2
from tests.support.bundles import build_bundle, golden_for, push
from tests.support.lifecycle import GRAY_MANIFEST, Harness, start_harness, stop_harness
from tests.support.model_factory import linear_classifier
from tests.support.trust import Release, build_trusted_bundle, entry, keyring

ACTIVE = model_pb2.UPDATE_STAGE_ACTIVE
REJECTED = model_pb2.UPDATE_STAGE_REJECTED


@dataclass
class Trust:
    root: Ed25519PrivateKey
    root_pub: Path
    k1: Ed25519PrivateKey
    k2: Ed25519PrivateKey
    model_root: Path
    work: Path
    harness: Harness

    def bundle(self, version: str, release: Release, **manifest: Any) -> Path:
        model = linear_classifier(self.work / f"src-{version}" / "model.onnx", seed=int(version))
        return build_trusted_bundle(
            self.work / f"gray-{version}-{release.sequence}.edgebundle",
            model,
            "gray",
            version,
            release,
            {**GRAY_MANIFEST, **manifest},
            golden_for(model),
        )

    async def push(self, bundle: Path, **options: Any) -> Any:
        responses, _ = await push(self.harness.models, bundle, **options)
        return responses[-1]

    async def restart(self) -> None:
        await stop_harness(self.harness)
        self.harness = await start_harness(self.model_root, self.work / "again", **self.settings)

    @property
    def settings(self) -> dict[str, Any]:
        return {"trust_root": self.root_pub, "trusted_keys": ()}


@pytest.fixture
async def trust(model_root: Path, tmp_path: Path) -> AsyncIterator[Trust]:
    root = Ed25519PrivateKey.generate()
    save_keypair(root, tmp_path / "root.key", tmp_path / "root.pub")
    work = tmp_path / "work"
    settings = {"trust_root": tmp_path / "root.pub", "trusted_keys": ()}
    harness = await start_harness(model_root, work, **settings)
    state = Trust(
        root,
        tmp_path / "root.pub",
        Ed25519PrivateKey.generate(),
        Ed25519PrivateKey.generate(),
        model_root,
        work,
        harness,
    )
    yield state
    await stop_harness(state.harness)


def _ring(trust: Trust, version: int, *keys: Ed25519PrivateKey) -> dict[str, Any]:
    return keyring(trust.root, version, *(entry(k) for k in keys))


async def test_replay_of_an_older_bundle_is_refused_unless_asked(trust: Trust) -> None:
    ring = _ring(trust, 1, trust.k1)
    v3 = trust.bundle("3", Release(trust.k1, 2, ring))
    v4 = trust.bundle("4", Release(trust.k1, 3))
    v5 = trust.bundle("5", Release(trust.k1, 4))
    assert (await trust.push(v3)).stage == ACTIVE
    assert (await trust.push(v5)).stage == ACTIVE  # this gateway missed 4's rollout

    # The attack: an older signed bundle rolls the gateway back.
    final = await trust.push(v4)
    assert final.stage == REJECTED
    assert "has sequence 3, older than installed sequence 4" in final.reason
    assert "--allow-older" in final.reason
    assert await trust.harness.predict_version() == "5"

    # The operator's deliberate rollback passes; the floor stays at 4.
    assert (await trust.push(v4, allow_older=True)).stage == ACTIVE
    assert await trust.harness.predict_version() == "4"
    # A bundle already on the gateway is answered from its ledger and changes nothing.
    again = await trust.push(v3)
    assert again.stage != ACTIVE and "already on the gateway" in again.reason
    assert await trust.harness.predict_version() == "4"

    await trust.restart()  # the highest sequence is remembered on disk
    v6 = trust.bundle("6", Release(trust.k1, 4))
    final = await trust.push(v6)
    assert final.stage == REJECTED
    assert "sequence 4, already used by another bundle" in final.reason
    assert (await trust.push(trust.bundle("7", Release(trust.k1, 5)))).stage == ACTIVE
    assert await trust.harness.predict_version() == "7"


async def test_expired_legacy_and_unknown_metadata_are_refused(trust: Trust) -> None:
    first = trust.bundle("3", Release(trust.k1, 2))  # no keyring delivered yet
    final = await trust.push(first)
    assert final.stage == REJECTED and "has no keyring yet" in final.reason

    past = datetime.now(UTC) - timedelta(minutes=1)
    expired_ring = keyring(trust.root, 1, entry(trust.k1), expires=past)
    final = await trust.push(trust.bundle("3", Release(trust.k1, 2, expired_ring)))
    assert final.stage == REJECTED and "(version 1) expired at" in final.reason

    stale = trust.bundle("3", Release(trust.k1, 2, _ring(trust, 1, trust.k1), expires=past))
    final = await trust.push(stale)
    assert final.stage == REJECTED and "bundle metadata expired at" in final.reason

    model = linear_classifier(trust.work / "legacy" / "model.onnx", seed=31)
    legacy = build_bundle(
        trust.work / "legacy.edgebundle", model, "gray", "3", trust.k1, GRAY_MANIFEST
    )
    final = await trust.push(legacy)
    assert final.stage == REJECTED and "signed the legacy way" in final.reason

    assert await trust.harness.predict_version() == "2"  # serving all along


async def test_a_revoked_key_is_refused_once_the_newer_keyring_arrived(trust: Trust) -> None:
    ring_v1 = _ring(trust, 1, trust.k1, trust.k2)
    assert (await trust.push(trust.bundle("3", Release(trust.k1, 2, ring_v1)))).stage == ACTIVE
    assert (await trust.push(trust.bundle("4", Release(trust.k2, 3)))).stage == ACTIVE

    # k2 leaked: keyring 2 drops it, delivered inside a bundle signed by k1.
    ring_v2 = _ring(trust, 2, trust.k1)
    assert (await trust.push(trust.bundle("5", Release(trust.k1, 4, ring_v2)))).stage == ACTIVE

    # The thief signs a newer bundle and attaches the old keyring that still lists k2.
    stolen = trust.bundle("6", Release(trust.k2, 9, ring_v1))
    final = await trust.push(stolen)
    assert final.stage == REJECTED
    assert "keyring version 2 does not certify (revoked or never added)" in final.reason

    # A keyring made by anyone but the root is refused outright.
    forged_root = Ed25519PrivateKey.generate()
    forged = keyring(forged_root, 3, entry(trust.k2))
    final = await trust.push(trust.bundle("7", Release(trust.k2, 10, forged)))
    assert final.stage == REJECTED and "not by the trusted root key" in final.reason
    assert await trust.harness.predict_version() == "5"

    await trust.restart()  # keyring version 2 is remembered
    final = await trust.push(stolen)
    assert final.stage == REJECTED and "keyring version 2 does not certify" in final.reason
    assert (await trust.push(trust.bundle("6", Release(trust.k1, 5)))).stage == ACTIVE
    assert await trust.harness.predict_version() == "6"


async def test_a_key_limited_to_other_models_is_refused(trust: Trust) -> None:
    ring = keyring(trust.root, 1, entry(trust.k1, models=("digits",)))
    final = await trust.push(trust.bundle("3", Release(trust.k1, 2, ring)))
    assert final.stage == REJECTED
    assert "may sign only digits, not model 'gray'" in final.reason
    assert await trust.harness.predict_version() == "2"
