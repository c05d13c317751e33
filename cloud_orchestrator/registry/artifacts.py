"""Where published bundles live: the ``ArtifactStore`` interface and the local folder.

Bundles are content-addressed by their sha256. Two implementations:
``FolderArtifacts`` (``DIR/sha256/<2 hex>/<64 hex>.edgebundle``, the default and the
only one with SQLite) and ``DatabaseArtifacts`` (registry/db_artifacts.py: chunks in
PostgreSQL, shared by every orchestrator replica on that database).

Every store streams: ``write`` hashes while it copies and keeps nothing but one block
in memory; ``blocks`` yields at most ``BLOCK_BYTES`` at a time from an offset, so a
FetchModel or a push never holds a whole bundle.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import grpc

from cloud_orchestrator.errors import OrchestratorError
from edge_contracts import status

__all__ = [
    "BLOCK_BYTES",
    "ArtifactCorrupt",
    "ArtifactStore",
    "FolderArtifacts",
    "check_sha256",
    "file_sha256",
]

# A block is one FetchModel message (at most 1 MiB by the contract). 256 KiB, not 1 MiB:
# what a fetch holds while gRPC writes a block is about three times its size (the block,
# its message, gRPC's copy), and 50 fetchers of a 4 MB bundle peaked at +164 MiB RSS with
# 1 MiB database chunks against +48 MiB with 256 KiB ones
# (tests/e2e/cloud_orchestrator/test_shared_artifacts.py). Pushes regroup blocks into the
# gateway's 1 MiB chunks (cloud_orchestrator/grpc/push_client.py).
BLOCK_BYTES = 256 << 10


class ArtifactCorrupt(OrchestratorError):
    """Stored bundle bytes no longer match their sha256 (a damaged disk or row)."""


# DATA_LOSS: the bytes are gone or wrong; retrying the same replica will not help.
status.register({ArtifactCorrupt: grpc.StatusCode.DATA_LOSS})


def check_sha256(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class ArtifactStore(Protocol):
    def describe(self) -> str:
        """Where the bundles are, for logs and messages."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None:
        """Bytes stored under ``sha256``; None when absent."""
        ...

    def write(self, stream: BinaryIO, expected_sha256: str) -> int:
        """Store ``stream`` under ``expected_sha256``, hashing while reading; raises
        ValueError (nothing stored) when the bytes hash to something else. Returns the
        size. Storing bytes that are there already is a no-op."""
        ...

    def blocks(self, sha256: str, offset: int = 0) -> Iterator[bytes]:
        """The bytes from ``offset`` to the end, in blocks of at most ``BLOCK_BYTES``.
        Raises ``ArtifactCorrupt`` (before yielding anything wrong) when the store can
        tell the bytes changed. Nothing is read before the first ``next``."""
        ...


class FolderArtifacts:
    """The local folder: written to a temp file beside the final place, hashed while
    copied, fsynced and renamed, so a reader never sees half a file and the name is
    always the hash of the content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return f"folder {self.root}"

    def path_for(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / "sha256" / sha256[:2] / f"{sha256}.edgebundle"

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except FileNotFoundError:
            return None

    def write(self, stream: BinaryIO, expected_sha256: str) -> int:
        target = self.path_for(expected_sha256)
        if target.is_file():
            return target.stat().st_size
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while block := stream.read(BLOCK_BYTES):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != expected_sha256:
                raise ValueError(
                    f"the bytes hash to {digest.hexdigest()[:16]}.., not "
                    f"{expected_sha256[:16]}..: they changed while being stored; publish again"
                )
            Path(tmp).replace(target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return size

    def blocks(self, sha256: str, offset: int = 0) -> Iterator[bytes]:
        path = self.path_for(sha256)
        # A whole read (from 0) is hashed on the way: a damaged file fails at its end
        # instead of passing as the bundle (the reader has every byte but the verdict).
        # Whole reads (from 0) are hashed on the way and the last block is only yielded
        # once the hash matches: a damaged file fails instead of passing as the bundle.
        digest = hashlib.sha256() if offset == 0 else None
        with path.open("rb") as handle:
            end = os.fstat(handle.fileno()).st_size
            position = handle.seek(offset)
            while block := handle.read(BLOCK_BYTES):
                position += len(block)
                if digest is not None:
                    digest.update(block)
                    if position >= end and digest.hexdigest() != sha256:
                        raise ArtifactCorrupt(
                            f"bundle {sha256[:16]}.. in {self.describe()} no longer matches "
                            f"its sha256 (the file hashes to {digest.hexdigest()[:16]}..); "
                            "publish it again"
                        )
                yield block
