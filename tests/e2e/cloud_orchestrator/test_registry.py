"""Registry: publish through the real CLI on SQLite and PostgreSQL; tampered, duplicate
and untrusted bundles are refused; rollout planning is deterministic."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.rollouts.plan import FailureThreshold, Strategy, plan_waves
from tests.support.bundles import make_keys
from tests.support.orchestrator import (  # noqa: F401
    Publisher,
    cli,
    cli_json,
    db_url,
    postgres_server,
    publisher,
)


def tamper(bundle: Path, destination: Path) -> Path:
    """Flip one byte inside model.onnx's data, leaving the tar structure intact."""
    with tarfile.open(bundle) as tar:
        member = tar.getmember("model.onnx")
        offset = member.offset_data + member.size // 2
    data = bytearray(bundle.read_bytes())
    data[offset] ^= 0x01
    destination.write_bytes(bytes(data))
    return destination


def test_publish_list_and_refusals(db_url: str, publisher: Publisher, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    keys = str(publisher.public_key)
    v1 = publisher.gray_bundle("1")
    v2 = publisher.gray_bundle(
        "2", lineage={"parent_version": "1"}, evaluation={"top1": 0.91, "samples": 100}
    )
    published = cli_json("publish", str(v1), "--trusted-keys", keys, db=db_url, artifacts=artifacts)
    assert published["model"] == "gray" and published["version"] == "1"
    cli(
        "publish",
        str(v2),
        "--trusted-keys",
        keys,
        "--published-by",
        "ci",
        db=db_url,
        artifacts=artifacts,
    )

    versions = cli_json("versions", "gray", db=db_url, artifacts=artifacts)
    assert [v["version"] for v in versions] == ["1", "2"]
    second = versions[1]
    assert second["parent_version"] == "1" and second["published_by"] == "ci"
    assert second["evaluation"] == {"top1": 0.91, "samples": 100}
    assert second["labels"] == [f"class-{i}" for i in range(10)]
    assert second["size_bytes"] == v2.stat().st_size and len(second["sha256"]) == 64
    stored = artifacts / "sha256" / second["sha256"][:2] / f"{second['sha256']}.edgebundle"
    assert stored.read_bytes() == v2.read_bytes()  # content-addressed copy
    models = cli_json("models", db=db_url, artifacts=artifacts)
    assert models == [
        {
            "name": "gray",
            "versions": 2,
            "latest_version": "2",
            "latest_published_at": models[0]["latest_published_at"],
        }
    ]

    # The same bundle again, and other bytes under a published version: refused.
    again = cli(
        "publish", str(v1), "--trusted-keys", keys, db=db_url, artifacts=artifacts, check=False
    )
    assert again.returncode == 1 and "already published" in again.stderr
    other = publisher.gray_bundle("1", name="gray", labels=["x"] * 10)
    clash = cli(
        "publish", str(other), "--trusted-keys", keys, db=db_url, artifacts=artifacts, check=False
    )
    assert clash.returncode == 1 and "different bytes" in clash.stderr

    # Tampered payload, and a bundle signed by a key the registry does not trust.
    bad = tamper(publisher.gray_bundle("3"), tmp_path / "tampered.edgebundle")
    refused = cli(
        "publish", str(bad), "--trusted-keys", keys, db=db_url, artifacts=artifacts, check=False
    )
    assert refused.returncode == 1 and "modified" in refused.stderr
    _, stranger = make_keys(tmp_path / "stranger", "stranger")
    untrusted = cli(
        "publish",
        str(publisher.gray_bundle("4")),
        "--trusted-keys",
        str(stranger),
        db=db_url,
        artifacts=artifacts,
        check=False,
    )
    assert untrusted.returncode == 1 and "not among the trusted keys" in untrusted.stderr
    no_keys = cli(
        "publish", str(publisher.gray_bundle("5")), db=db_url, artifacts=artifacts, check=False
    )
    assert no_keys.returncode == 1 and "--trusted-keys" in no_keys.stderr
    versions = cli_json("versions", "gray", db=db_url, artifacts=artifacts)
    assert [v["version"] for v in versions] == ["1", "2"]  # nothing refused was stored
    assert len(list((artifacts / "sha256").rglob("*.edgebundle"))) == 2


def test_cli_errors_go_to_stderr(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'o.db'}"
    missing = cli("versions", "nope", db=db, artifacts=tmp_path / "a", check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "no model named 'nope'" in missing.stderr
    bad_db = cli(
        "models", db="postgresql://nobody@127.0.0.1:1/none", artifacts=tmp_path / "a", check=False
    )
    assert bad_db.returncode == 2 and "cannot open database" in bad_db.stderr


def test_strategies_plan_waves_deterministically() -> None:
    ids = [f"gw-{i:02d}" for i in range(20)]
    assert plan_waves(ids, Strategy.parse("all")) == [sorted(ids)]
    canary = plan_waves(list(reversed(ids)), Strategy.parse("canary:2"))
    assert canary == [ids[:2], ids[2:]]
    waves = plan_waves(ids, Strategy.parse("waves:1,10%,50%,100%"))
    assert [len(w) for w in waves] == [1, 1, 8, 10]
    assert [g for wave in waves for g in wave] == ids
    # Short fleets skip empty waves; a plan that stops early gets a final wave.
    assert [len(w) for w in plan_waves(ids[:3], Strategy.parse("waves:1,10%,50%,100%"))] == [
        1,
        1,
        1,
    ]
    assert [len(w) for w in plan_waves(ids[:5], Strategy.parse("waves:2"))] == [2, 3]
    for bad in ("some", "canary:0", "waves:", "waves:1,150%"):
        with pytest.raises(InvalidRequest):
            Strategy.parse(bad)
    assert FailureThreshold.parse("0").exceeded(1, 5)
    assert not FailureThreshold.parse("1").exceeded(1, 5)
    assert FailureThreshold.parse("20%").exceeded(2, 5)
    assert not FailureThreshold.parse("20%").exceeded(1, 5)
