"""Bundles as content-addressed chunks in PostgreSQL (table ``artifact_chunks``,
cloud_orchestrator/storage/models.py), so orchestrator replicas on different hosts that
share the database serve each other's bundles.

A bundle is written in one transaction while it is hashed: a reader never sees part of
one, and bytes that hash to something else than their name are rolled back. Reads go
chunk by chunk from an offset, one short query each (no connection is held between
chunks, so 50 slow fetchers do not empty the pool), and each chunk is checked against
its own sha256 before any of it is yielded; a whole read also checks the bundle's
sha256 before its last chunk. Chunks that passed are kept in a bounded cache
(registry/chunk_cache.py): a thousand fetchers of one bundle cost one read and one hash
of each chunk per process, not a thousand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import BinaryIO, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert

from cloud_orchestrator.errors import InvalidRequest, NotFound
from cloud_orchestrator.registry.artifacts import BLOCK_BYTES, ArtifactCorrupt, check_sha256
from cloud_orchestrator.registry.chunk_cache import CHUNK_CACHE_BYTES, ChunkCache
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import ArtifactChunk

__all__ = ["DatabaseArtifacts"]

_CHUNKS = cast(Table, ArtifactChunk.__table__)


class DatabaseArtifacts:
    def __init__(
        self, db: Database, chunk_bytes: int = BLOCK_BYTES, cache_bytes: int = CHUNK_CACHE_BYTES
    ) -> None:
        if db.engine.dialect.name != "postgresql":
            raise InvalidRequest(
                "--artifacts postgresql keeps bundles in the database and needs a PostgreSQL "
                "--db (postgresql://USER@HOST:PORT/DB); with SQLite give a folder: "
                "--artifacts DIR"
            )
        # A chunk is read whole (to check its sha256) and sent as one FetchModel message.
        self.chunk_bytes = max(1, min(chunk_bytes, BLOCK_BYTES))
        self._db = db
        self.cache = ChunkCache(cache_bytes)

    def describe(self) -> str:
        return f"database table artifact_chunks ({self._db.describe()})"

    def exists(self, sha256: str) -> bool:
        # Written in one transaction: chunk 0 is there only when every chunk is.
        query = select(_CHUNKS.c.idx).where(
            _CHUNKS.c.sha256 == check_sha256(sha256), _CHUNKS.c.idx == 0
        )
        with self._db.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def size(self, sha256: str) -> int | None:
        query = select(func.sum(_CHUNKS.c.length)).where(_CHUNKS.c.sha256 == check_sha256(sha256))
        with self._db.engine.connect() as connection:
            total = connection.execute(query).scalar_one_or_none()
        return None if total is None else int(total)

    def write(self, stream: BinaryIO, expected_sha256: str) -> int:
        check_sha256(expected_sha256)
        digest = hashlib.sha256()
        start = 0
        index = 0
        with self._db.engine.begin() as connection:
            while True:
                block = stream.read(self.chunk_bytes)
                if not block and index > 0:
                    break
                digest.update(block)
                # Two replicas publishing the same bytes at once: the second waits for
                # the first's rows and keeps them (same name, same content).
                connection.execute(
                    insert(_CHUNKS)
                    .values(
                        sha256=expected_sha256,
                        idx=index,
                        start=start,
                        length=len(block),
                        digest=hashlib.sha256(block).hexdigest(),
                        data=block,
                    )
                    .on_conflict_do_nothing()
                )
                start += len(block)
                index += 1
                if not block:
                    break
            if digest.hexdigest() != expected_sha256:
                raise ValueError(  # leaving the block rolls every chunk back
                    f"the bytes hash to {digest.hexdigest()[:16]}.., not "
                    f"{expected_sha256[:16]}..: they changed while being stored; publish again"
                )
        return start

    def blocks(self, sha256: str, offset: int = 0) -> Iterator[bytes]:
        check_sha256(sha256)
        layout = self._layout(sha256)
        if not layout:
            raise NotFound(f"bundle {sha256[:16]}.. is not in {self.describe()}")
        digests = tuple(digest for _index, _start, _length, digest in layout)
        # The whole bundle's hash, once per layout: chunks that match these digests were
        # found to make up ``sha256`` before (a chunk's own hash is checked on every read).
        whole = None
        if offset == 0 and not self.cache.whole_verified(sha256, digests):
            whole = hashlib.sha256()
        for index, start, length, digest in layout:
            if start + length <= offset and length > 0:
                continue
            data = self._verified_chunk(sha256, index, length, digest)
            if whole is not None:
                whole.update(data)
                if index == len(layout) - 1:
                    if whole.hexdigest() != sha256:
                        raise ArtifactCorrupt(
                            f"bundle {sha256[:16]}.. in {self.describe()} no longer matches "
                            "its sha256 (its chunks were reordered or replaced); publish it "
                            "again"
                        )
                    self.cache.mark_whole(sha256, digests)
            if offset > start:
                data = data[offset - start :]
            if data:
                yield data

    def _verified_chunk(self, sha256: str, index: int, length: int, digest: str) -> bytes:
        """The chunk's bytes once they matched ``digest``: from the cache, or read (by one
        thread when several want it) and checked."""
        key = (sha256, index, digest)
        cached = self.cache.claim(key)
        if cached is not None:
            return cached
        try:
            data = self._chunk(sha256, index)
            if data is None or len(data) != length or hashlib.sha256(data).hexdigest() != digest:
                raise ArtifactCorrupt(
                    f"chunk {index} of bundle {sha256[:16]}.. in {self.describe()} no longer "
                    "matches its sha256; the bundle cannot be served until it is published "
                    "again from its file"
                )
        except BaseException:
            self.cache.release(key)  # never kept: the next read goes to the database again
            raise
        self.cache.put(key, data)
        return data

    def _layout(self, sha256: str) -> list[tuple[int, int, int, str]]:
        """(index, start, length, digest) of every chunk, checked to tile the bundle."""
        query = (
            select(_CHUNKS.c.idx, _CHUNKS.c.start, _CHUNKS.c.length, _CHUNKS.c.digest)
            .where(_CHUNKS.c.sha256 == sha256)
            .order_by(_CHUNKS.c.idx)
        )
        with self._db.engine.connect() as connection:
            rows = [(int(i), int(s), int(n), str(d)) for i, s, n, d in connection.execute(query)]
        expected_start = 0
        for position, (index, start, length, _digest) in enumerate(rows):
            if index != position or start != expected_start:
                raise ArtifactCorrupt(
                    f"bundle {sha256[:16]}.. in {self.describe()} has a missing or misplaced "
                    f"chunk at index {position}; publish it again"
                )
            expected_start += length
        return rows

    def _chunk(self, sha256: str, index: int) -> bytes | None:
        query = select(_CHUNKS.c.data).where(_CHUNKS.c.sha256 == sha256, _CHUNKS.c.idx == index)
        with self._db.engine.connect() as connection:
            data = connection.execute(query).scalar_one_or_none()
        return None if data is None else bytes(data)
