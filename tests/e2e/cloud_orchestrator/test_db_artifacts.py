"""The PostgreSQL artifact store (cloud_orchestrator/registry/db_artifacts.py) on a real
server: chunked writes in one transaction under the content's sha256, reads from any
offset, and damaged, missing or swapped chunks caught before their bytes are handed out.
(Here rather than in tests/unit: it needs a PostgreSQL server, which unit tests never
start; the fixture is tests/support/orchestrator.py's.)"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cloud_orchestrator.errors import InvalidRequest, NotFound
from cloud_orchestrator.registry.artifacts import ArtifactCorrupt
from cloud_orchestrator.registry.db_artifacts import DatabaseArtifacts
from cloud_orchestrator.storage.db import Database
from tests.support.orchestrator import fresh_database, postgres_server  # noqa: F401

pytestmark = pytest.mark.slow

CHUNK = 1000  # small chunks: many rows from a few kB


@pytest.fixture
def database(postgres_server: str) -> Iterator[tuple[Database, str]]:
    url = fresh_database(postgres_server)
    db = Database(url)
    try:
        yield db, url
    finally:
        db.dispose()


class Reads(io.BytesIO):
    """A stream that remembers the largest read asked of it."""

    largest = 0

    def read(self, size: int | None = -1) -> bytes:
        self.largest = max(self.largest, size or 0)
        return super().read(size)


def rows(url: str, sha256: str) -> list[tuple[int, int, int]]:
    with psycopg.connect(url) as connection:
        return [
            (int(i), int(s), int(n))
            for i, s, n in connection.execute(
                "SELECT idx, start, length FROM artifact_chunks WHERE sha256 = %s ORDER BY idx",
                (sha256,),
            )
        ]


def store_bytes(store: DatabaseArtifacts, data: bytes) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    assert store.write(io.BytesIO(data), sha256) == len(data)
    return sha256


def test_written_in_chunks_and_read_back_from_any_offset(database: tuple[Database, str]) -> None:
    db, url = database
    store = DatabaseArtifacts(db, chunk_bytes=CHUNK)
    data = os.urandom(5 * CHUNK + 17)
    stream = Reads(data)
    sha256 = hashlib.sha256(data).hexdigest()
    assert store.write(stream, sha256) == len(data)
    assert stream.largest == CHUNK  # never more than a chunk in memory
    assert rows(url, sha256) == [(i, i * CHUNK, CHUNK) for i in range(5)] + [(5, 5 * CHUNK, 17)]
    assert store.exists(sha256) and store.size(sha256) == len(data)
    for offset in (0, 1, CHUNK - 1, CHUNK, 3 * CHUNK + 5, len(data) - 1, len(data)):
        blocks = list(store.blocks(sha256, offset))
        assert b"".join(blocks) == data[offset:]
        assert all(0 < len(b) <= CHUNK for b in blocks)
    # Writing the same bytes again changes nothing.
    assert store.write(io.BytesIO(data), sha256) == len(data)
    assert len(rows(url, sha256)) == 6


def test_bytes_that_hash_to_another_name_leave_no_row(database: tuple[Database, str]) -> None:
    db, url = database
    store = DatabaseArtifacts(db, chunk_bytes=CHUNK)
    claimed = hashlib.sha256(b"verified").hexdigest()
    with pytest.raises(ValueError, match="changed while being stored"):
        store.write(io.BytesIO(os.urandom(3 * CHUNK)), claimed)
    assert rows(url, claimed) == []
    assert not store.exists(claimed) and store.size(claimed) is None
    with pytest.raises(NotFound):
        next(store.blocks(claimed))


def test_two_writers_of_the_same_bytes_both_succeed_with_one_copy(
    database: tuple[Database, str],
) -> None:
    db, url = database
    store = DatabaseArtifacts(db, chunk_bytes=CHUNK)
    data = os.urandom(20 * CHUNK)
    sha256 = hashlib.sha256(data).hexdigest()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.write(io.BytesIO(data), sha256)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(rows(url, sha256)) == 20
    assert b"".join(store.blocks(sha256)) == data


def damage(url: str, statement: str, sha256: str) -> None:
    with psycopg.connect(url) as connection:
        connection.execute(statement, (sha256,))


def test_a_damaged_chunk_is_caught_before_its_bytes_are_handed_out(
    database: tuple[Database, str],
) -> None:
    db, url = database
    store = DatabaseArtifacts(db, chunk_bytes=CHUNK)
    data = os.urandom(4 * CHUNK)
    sha256 = store_bytes(store, data)
    damage(
        url,
        "UPDATE artifact_chunks SET data = set_byte(data, 3, (get_byte(data, 3) + 1) %% 256) "
        "WHERE sha256 = %s AND idx = 2",
        sha256,
    )
    for offset in (0, CHUNK + 1, 2 * CHUNK + 500):
        received: list[bytes] = []
        with pytest.raises(ArtifactCorrupt, match=r"chunk 2 of bundle .* no longer matches"):
            for block in store.blocks(sha256, offset):
                received.append(block)
        assert b"".join(received) == data[offset : 2 * CHUNK]
    # Past the damage, a resumed read is served.
    assert b"".join(store.blocks(sha256, 3 * CHUNK)) == data[3 * CHUNK :]


def test_a_missing_chunk_is_caught_before_anything_is_read(database: tuple[Database, str]) -> None:
    db, url = database
    store = DatabaseArtifacts(db, chunk_bytes=CHUNK)
    sha256 = store_bytes(store, os.urandom(4 * CHUNK))
    damage(url, "DELETE FROM artifact_chunks WHERE sha256 = %s AND idx = 1", sha256)
    with pytest.raises(ArtifactCorrupt, match="missing or misplaced chunk at index 1"):
        next(store.blocks(sha256, 3 * CHUNK))


def test_swapped_chunks_fail_a_whole_read_before_its_last_chunk(
    database: tuple[Database, str],
) -> None:
    db, url = database
    store = DatabaseArtifacts(db, chunk_bytes=CHUNK)
    data = os.urandom(3 * CHUNK)
    sha256 = store_bytes(store, data)
    # Each row stays consistent with its own digest; only their order is wrong.
    damage(
        url,
        "UPDATE artifact_chunks AS a SET data = b.data, digest = b.digest "
        "FROM artifact_chunks AS b WHERE a.sha256 = %s AND b.sha256 = a.sha256 "
        "AND ((a.idx = 0 AND b.idx = 1) OR (a.idx = 1 AND b.idx = 0))",
        sha256,
    )
    received: list[bytes] = []
    with pytest.raises(ArtifactCorrupt, match="reordered or replaced"):
        for block in store.blocks(sha256):
            received.append(block)
    assert len(received) == 2


def test_the_database_store_refuses_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    try:
        with pytest.raises(InvalidRequest, match="needs a PostgreSQL"):
            DatabaseArtifacts(db)
    finally:
        db.dispose()
