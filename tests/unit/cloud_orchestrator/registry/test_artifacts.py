"""The folder artifact store on real files: streamed writes under the content's sha256,
reads from any offset in blocks, refusals that leave nothing behind, a damaged file
caught before its last block; and which store a ``--artifacts`` value selects."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.registry.artifacts import BLOCK_BYTES, ArtifactCorrupt, FolderArtifacts
from cloud_orchestrator.registry.stores import DATABASE_ARTIFACTS, check_artifacts


def payload(size: int) -> bytes:
    return os.urandom(size)


def stored(store: FolderArtifacts, data: bytes) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    assert store.write(io.BytesIO(data), sha256) == len(data)
    return sha256


def test_a_bundle_is_stored_under_its_sha256_and_read_back_from_any_offset(
    tmp_path: Path,
) -> None:
    store = FolderArtifacts(tmp_path / "artifacts")
    data = payload(2 * BLOCK_BYTES + 1234)
    sha256 = stored(store, data)
    path = store.path_for(sha256)
    assert path == tmp_path / "artifacts" / "sha256" / sha256[:2] / f"{sha256}.edgebundle"
    assert store.exists(sha256) and store.size(sha256) == len(data)
    for offset in (0, 1, BLOCK_BYTES, len(data) - 1, len(data)):
        blocks = list(store.blocks(sha256, offset))
        assert b"".join(blocks) == data[offset:]
        assert all(0 < len(b) <= BLOCK_BYTES for b in blocks)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_storing_the_same_bytes_again_keeps_the_first_copy(tmp_path: Path) -> None:
    store = FolderArtifacts(tmp_path)
    data = payload(5000)
    sha256 = stored(store, data)
    before = store.path_for(sha256).stat().st_mtime_ns
    assert store.write(io.BytesIO(data), sha256) == len(data)
    assert store.path_for(sha256).stat().st_mtime_ns == before


def test_bytes_that_hash_to_another_name_are_refused_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    store = FolderArtifacts(tmp_path)
    claimed = hashlib.sha256(b"what was verified").hexdigest()
    with pytest.raises(ValueError, match="changed while being stored"):
        store.write(io.BytesIO(b"what arrived instead"), claimed)
    assert not store.exists(claimed) and store.size(claimed) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_a_damaged_file_fails_a_whole_read_before_its_last_block(tmp_path: Path) -> None:
    store = FolderArtifacts(tmp_path)
    data = payload(3 * BLOCK_BYTES)
    sha256 = stored(store, data)
    path = store.path_for(sha256)
    damaged = bytearray(data)
    damaged[10] ^= 0xFF
    path.write_bytes(bytes(damaged))
    received: list[bytes] = []
    with pytest.raises(ArtifactCorrupt, match="no longer matches its sha256"):
        for block in store.blocks(sha256):
            received.append(block)
    assert len(received) == 2  # the last block was never handed out


def test_not_a_sha256_is_refused_before_any_path_is_built(tmp_path: Path) -> None:
    store = FolderArtifacts(tmp_path)
    for bad in ("../../etc/passwd", "ABC", "g" * 64, "A" * 64):
        with pytest.raises(ValueError, match="not a sha256 hex digest"):
            store.exists(bad)


def test_artifacts_in_the_database_need_a_postgresql_database() -> None:
    with pytest.raises(InvalidRequest, match="needs a PostgreSQL --db"):
        check_artifacts("sqlite:///orchestrator.db", DATABASE_ARTIFACTS)
    check_artifacts("postgresql://edge@db:5432/fleet", DATABASE_ARTIFACTS)
    check_artifacts("sqlite:///orchestrator.db", Path("postgresql"))  # a folder so named
