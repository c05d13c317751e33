"""Content-addressed bundle storage: ``DIR/sha256/<2 hex>/<64 hex>.edgebundle``.

A bundle is copied to a temporary file beside its final place, hashed while it is
copied, fsynced and renamed, so a reader never sees half a file and the name is
always the hash of the content.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["ArtifactStore", "file_sha256"]

_CHUNK = 1 << 20


def file_sha256(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / "sha256" / sha256[:2] / f"{sha256}.edgebundle"

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def put(self, source: Path, expected_sha256: str) -> Path:
        """Copy ``source`` in under its hash; refuses bytes that changed since they were
        verified (the hash is computed again while copying)."""
        target = self.path_for(expected_sha256)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != expected_sha256:
                raise ValueError(f"{source} changed while it was being stored; publish it again")
            Path(tmp).replace(target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def read(self, sha256: str, offset: int, length: int) -> bytes:
        with self.path_for(sha256).open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)
