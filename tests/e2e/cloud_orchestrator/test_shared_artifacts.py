"""Orchestrator replicas on one PostgreSQL that share no folder: with
``--artifacts postgresql`` a bundle published through one is fetched (resumable
FetchModel) and pushed by another; a damaged chunk in the database ends a fetch with
DATA_LOSS instead of wrong bytes; 50 concurrent fetchers of a 4 MB+ bundle do not cost
the serving replica 50 copies of it."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import grpc
import psycopg
import pytest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.registry.artifacts import BLOCK_BYTES
from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.bundle_bombs import peak_rss_bytes
from tests.support.bundles import build_bundle
from tests.support.model_factory import linear_classifier
from tests.support.orchestrator import (  # noqa: F401
    GRAY_MANIFEST,
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    fresh_database,
    postgres_server,
    publisher,
    running_fleet,
    wait_for,
)

pytestmark = pytest.mark.slow

IN_DATABASE = Path("postgresql")  # --artifacts postgresql


def publish(publisher: Publisher, db: str, artifacts: Path, bundle: Path) -> dict[str, object]:
    keys = ("--trusted-keys", str(publisher.public_key))
    result: dict[str, object] = cli_json("publish", str(bundle), *keys, db=db, artifacts=artifacts)
    return result


Credential = tuple[tuple[str, str], ...]


async def enrolled(db: str, artifacts: Path, target: str, model: str, version: str) -> Credential:
    """gw-1's credential, once it enrolled, subscribed and has ``version`` assigned: a
    gateway fetches only what is assigned to it (cloud_orchestrator/grpc/auth.py)."""
    token = cli_json("enrollment-tokens", "create", "--auto-admit", db=db, artifacts=artifacts)
    cli("assign", model, "--gateways", "id=gw-1", "--version", version, db=db, artifacts=artifacts)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        enrollment = orchestrator_pb2.EnrollRequest(
            gateway_id="gw-1", enrollment_token=token["token"]
        )
        secret = (await stub.Enroll(enrollment, timeout=10)).gateway_secret
        credential = (("authorization", f"Bearer {secret}"),)
        subscribe = orchestrator_pb2.SubscribeRequest(gateway_id="gw-1")
        stream = stub.Subscribe(subscribe, metadata=credential, timeout=30)
        await stream.read()  # the orchestrator knows gw-1 now
        stream.cancel()
    return credential


async def fetch(
    target: str, credential: Credential, version: str, offset: int = 0, model: str = "gray"
) -> tuple[bytes, list[orchestrator_pb2.FetchModelResponse]]:
    """Every byte FetchModel sends from ``offset``, and the messages themselves."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        request = orchestrator_pb2.FetchModelRequest(
            gateway_id="gw-1", model_name=model, model_version=version, offset=offset
        )
        call = stub.FetchModel(request, metadata=credential, timeout=60)
        replies = [reply async for reply in call]
    return b"".join(r.data for r in replies), replies


def big_bundle(publisher: Publisher, version: str) -> Path:
    """A signed gray bundle of about 4.4 MB (random weights do not compress)."""
    model = linear_classifier(
        publisher.workdir / f"big-{version}" / "model.onnx", size=330, seed=int(version)
    )
    return build_bundle(
        publisher.workdir / f"big-{version}.edgebundle",
        model,
        "big",
        version,
        publisher.key,
        GRAY_MANIFEST,
    )


async def test_published_through_a_fetched_through_b_from_an_offset(
    postgres_server: str, publisher: Publisher, tmp_path: Path
) -> None:
    db = fresh_database(postgres_server)
    bundle = publisher.gray_bundle("2")
    expected = bundle.read_bytes()
    published = publish(publisher, db, IN_DATABASE, bundle)
    assert published["sha256"] == hashlib.sha256(expected).hexdigest()
    a = OrchestratorProcess(db, IN_DATABASE, "--no-rollouts")
    b = OrchestratorProcess(db, IN_DATABASE, "--no-rollouts")
    try:
        assert any("artifacts in database table artifact_chunks" in line for line in b.log)
        credential = await enrolled(db, IN_DATABASE, a.target, "gray", "2")
        whole, replies = await fetch(b.target, credential, "2")
        assert whole == expected
        assert {r.bundle_sha256 for r in replies} == {published["sha256"]}
        # A gateway that already holds the first bytes (from A) resumes on B.
        offset = len(expected) // 3
        head, _ = await fetch(a.target, credential, "2")
        tail, replies = await fetch(b.target, credential, "2", offset)
        assert replies[0].offset == offset
        assert hashlib.sha256(head[:offset] + tail).hexdigest() == published["sha256"]
        # Past the end: the one status the servicer gives for it.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fetch(b.target, credential, "2", len(expected) + 1)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await asyncio.to_thread(a.terminate)
        await asyncio.to_thread(b.terminate)
    assert not IN_DATABASE.exists()  # no folder named after the flag's value


async def test_replicas_with_their_own_folders_do_not_share_and_say_so(
    postgres_server: str, publisher: Publisher, tmp_path: Path
) -> None:
    db = fresh_database(postgres_server)
    publish(publisher, db, tmp_path / "artifacts-a", publisher.gray_bundle("2"))
    b = OrchestratorProcess(db, tmp_path / "artifacts-b", "--no-rollouts")
    try:
        credential = await enrolled(db, tmp_path / "artifacts-b", b.target, "gray", "2")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await fetch(b.target, credential, "2")
    finally:
        await asyncio.to_thread(b.terminate)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    details = info.value.details() or ""
    assert "the bundle of gray version 2" in details
    assert "share bundles only with --artifacts postgresql" in details


async def test_a_rollout_run_by_b_pushes_a_bundle_published_through_a(
    postgres_server: str, publisher: Publisher, tmp_path: Path
) -> None:
    db = fresh_database(postgres_server)
    publish(publisher, db, IN_DATABASE, publisher.gray_bundle("2", golden=False))
    async with running_fleet(tmp_path / "fleet", ["gw-1"], publisher.public_key) as fleet:
        cli(
            "gateways", "register", "gw-1", "--address", fleet.address("gw-1"),
            "--labels", "site=berlin", db=db, artifacts=IN_DATABASE,
        )  # fmt: skip
        rollout = cli_json(
            "deploy", "gray", "2", "--gateways", "all", "--watch-seconds", "0.5", "--detach",
            db=db, artifacts=IN_DATABASE,
        )["id"]  # fmt: skip
        b = OrchestratorProcess(db, IN_DATABASE, "--poll-seconds", "0.1")
        orch = Orchestrator(db, "postgresql")
        try:
            await wait_for(lambda: orch.rollouts.get(rollout).state == "SUCCEEDED", timeout=90)
            record = orch.rollouts.get(rollout)
        finally:
            orch.close()
            await asyncio.to_thread(b.terminate)
        assert await fleet.serving_version("gw-1") == "2"
        assert record.targets[0].pushed_by == b.instance
        size = publisher.gray_bundle("2", golden=False).stat().st_size
        assert record.targets[0].bytes_sent == size


async def test_a_damaged_chunk_fails_the_fetch_with_data_loss(
    postgres_server: str, publisher: Publisher
) -> None:
    db = fresh_database(postgres_server)
    published = publish(publisher, db, IN_DATABASE, big_bundle(publisher, "1"))
    with psycopg.connect(db) as connection:  # one byte of the second chunk flipped
        connection.execute(
            "UPDATE artifact_chunks SET data = set_byte(data, 7, (get_byte(data, 7) + 1) %% 256) "
            "WHERE sha256 = %s AND idx = 1",
            (published["sha256"],),
        )
    b = OrchestratorProcess(db, IN_DATABASE, "--no-rollouts")
    try:
        credential = await enrolled(db, IN_DATABASE, b.target, "big", "1")
        for offset in (0, BLOCK_BYTES + 100):
            received: list[orchestrator_pb2.FetchModelResponse] = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async with grpc.aio.insecure_channel(b.target) as channel:
                    stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
                    request = orchestrator_pb2.FetchModelRequest(
                        gateway_id="gw-1", model_name="big", model_version="1", offset=offset
                    )
                    call = stub.FetchModel(request, metadata=credential, timeout=60)
                    async for reply in call:
                        received.append(reply)
            assert info.value.code() == grpc.StatusCode.DATA_LOSS
            assert "chunk 1 of bundle" in (info.value.details() or "")
            assert "no longer matches its sha256" in (info.value.details() or "")
            # Nothing of the damaged chunk left the orchestrator.
            assert all(r.offset + len(r.data) <= BLOCK_BYTES for r in received)
    finally:
        await asyncio.to_thread(b.terminate)


@pytest.mark.parametrize("where", ["postgresql", "folder"])
async def test_fifty_fetchers_of_a_4_mb_bundle_do_not_cost_fifty_copies(
    postgres_server: str, publisher: Publisher, tmp_path: Path, where: str
) -> None:
    db = fresh_database(postgres_server)
    artifacts = IN_DATABASE if where == "postgresql" else tmp_path / "artifacts"
    bundle = big_bundle(publisher, "1")
    size = bundle.stat().st_size
    assert size > 4_000_000
    sha256 = publish(publisher, db, artifacts, bundle)["sha256"]
    server = OrchestratorProcess(db, artifacts, "--no-rollouts", "--rate-burst", "200")
    try:
        credential = await enrolled(db, artifacts, server.target, "big", "1")
        await fetch(server.target, credential, "1", model="big")  # warm: first allocations
        Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")
        baseline = peak_rss_bytes(server.proc.pid)
        results = await asyncio.gather(
            *(fetch(server.target, credential, "1", model="big") for _ in range(50))
        )
        peak = peak_rss_bytes(server.proc.pid)
    finally:
        await asyncio.to_thread(server.terminate)
    assert all(hashlib.sha256(data).hexdigest() == sha256 for data, _ in results)
    growth = peak - baseline
    mib = 2**20
    print(f"{where}: {size} B bundle, RSS {baseline / mib:.1f} MiB, peak +{growth / mib:.1f} MiB")
    # 50 copies would be 50 x 4.4 MB = 208 MiB; the fetch budget holds 8 blocks of 256 KiB
    # (registry/fetch_budget.py). Measured on 2 shared cores: +40..+75 MiB, most of it the
    # 50 connections and the allocator; a quarter of the copies leaves room for that.
    assert growth < 50 * size / 4, f"peak RSS grew {growth / 2**20:.1f} MiB"


def test_artifacts_in_the_database_need_postgresql_and_nothing_is_created(
    tmp_path: Path,
) -> None:
    db_file = tmp_path / "orchestrator.db"
    result = cli("models", db=f"sqlite:///{db_file}", artifacts=IN_DATABASE, check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "edge-orchestrator: error: --artifacts postgresql keeps bundles in the database and "
        "needs a PostgreSQL --db (postgresql://USER@HOST:PORT/DB); with SQLite give a folder: "
        "--artifacts DIR"
    ]
    assert not db_file.exists() and not IN_DATABASE.exists()
