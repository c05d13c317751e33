"""Resumable bundle uploads under ``MODEL_ROOT/.incoming/``.

A partial upload is a file named after the model, version and bundle sha256, so a
new stream for the same bundle continues where the last one broke; bytes are only
appended at the current end. Limits are checked before any byte is written.

A partial upload survives a restart (the next push of the same bundle resumes it),
but not forever: one untouched for STALE_UPLOAD_SECONDS is removed at start and
whenever a new upload begins, so an abandoned push cannot hold the quota.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from edge_server.errors import InvalidInput, QuotaExceeded, UpdateRejected

INCOMING_DIR = ".incoming"
MAX_CHUNK_BYTES = 1 << 20
STALE_UPLOAD_SECONDS = 24 * 3600

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadLimits:
    max_bundle_bytes: int
    disk_quota_bytes: int


def tree_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).lstat().st_size
            except FileNotFoundError:
                continue
    return total


class Upload:
    """One bundle being received; ``offset`` is how many bytes are stored."""

    def __init__(self, path: Path, size: int, sha256: str) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.offset = path.stat().st_size if path.exists() else 0
        if self.offset > size:  # a stale file from another bundle: start over
            path.unlink()
            self.offset = 0

    def append(self, offset: int, data: bytes) -> None:
        if len(data) > MAX_CHUNK_BYTES:
            raise InvalidInput(
                f"chunk of {len(data)} bytes is over the {MAX_CHUNK_BYTES}-byte limit; "
                "send chunks of at most 1 MiB",
                field="chunk.data",
            )
        if offset != self.offset:
            raise InvalidInput(
                f"chunk offset {offset} does not continue the upload at {self.offset}; "
                f"resume from offset {self.offset}",
                field="chunk.offset",
            )
        if self.offset + len(data) > self.size:
            raise InvalidInput(
                f"chunk ends at {self.offset + len(data)}, past the declared bundle size "
                f"{self.size}",
                field="chunk.data",
            )
        with self.path.open("ab") as handle:
            handle.write(data)
        self.offset += len(data)

    def finish(self) -> Path:
        """fsync the complete file and check its size and sha256."""
        if self.offset != self.size:
            raise InvalidInput(
                f"commit after {self.offset} of {self.size} bytes; send the rest from offset "
                f"{self.offset} first",
                field="commit",
            )
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            os.fsync(handle.fileno())
        if digest.hexdigest() != self.sha256:
            actual = digest.hexdigest()
            self.discard()
            raise UpdateRejected(
                f"bundle sha256 is {actual[:16]}.., the header said {self.sha256[:16]}..: "
                "bytes were corrupted in transit; push it again"
            )
        return self.path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class UploadArea:
    """``.incoming`` under the model root; built once at start, when it drops stale uploads."""

    def __init__(
        self, model_root: Path, limits: UploadLimits, stale_after: float = STALE_UPLOAD_SECONDS
    ) -> None:
        self.model_root = model_root
        self.folder = model_root / INCOMING_DIR
        self.limits = limits
        self.stale_after = stale_after
        self.remove_stale()

    def remove_stale(self) -> list[Path]:
        """Remove files in ``.incoming`` untouched for ``stale_after`` seconds; return them."""
        if not self.folder.is_dir():
            return []
        cutoff = time.time() - self.stale_after
        removed = []
        for entry in self.folder.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    removed.append(entry)
            except FileNotFoundError:
                continue
        for entry in removed:
            logger.warning(
                "removed %s: a partial upload untouched for %g s", entry, self.stale_after
            )
        return removed

    def reserve_extraction(self, size: int) -> None:
        """QuotaExceeded unless ``size`` more bytes (an extraction, counted from the verified
        manifest's sizes) fit the quota and the disk. Call before writing any of them."""
        used = tree_size(self.model_root)
        if used + size > self.limits.disk_quota_bytes:
            raise QuotaExceeded(
                f"the bundle extracts to {size} bytes but the model root uses {used} of its "
                f"{self.limits.disk_quota_bytes}-byte quota; remove old versions or raise "
                "--disk-quota-bytes"
            )
        free = shutil.disk_usage(self.model_root).free
        if size > free:
            raise QuotaExceeded(f"the bundle extracts to {size} bytes but the disk has {free} free")

    def begin(self, name: str, version: str, size: int, sha256: str) -> Upload:
        """Open (or resume) the upload; RESOURCE_EXHAUSTED before writing when it cannot fit."""
        if size > self.limits.max_bundle_bytes:
            raise QuotaExceeded(
                f"bundle is {size} bytes, over this gateway's limit of "
                f"{self.limits.max_bundle_bytes} (--max-bundle-bytes)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.remove_stale()
        upload = Upload(self.folder / f"{name}--{version}--{sha256[:32]}.part", size, sha256)
        # Room for the rest of the bundle plus its extracted copy.
        needed = (size - upload.offset) + size
        used = tree_size(self.model_root)
        if used + needed > self.limits.disk_quota_bytes:
            raise QuotaExceeded(
                f"bundle needs {needed} more bytes but the model root uses {used} of its "
                f"{self.limits.disk_quota_bytes}-byte quota; remove old versions or raise "
                "--disk-quota-bytes"
            )
        free = shutil.disk_usage(self.model_root).free
        if needed > free:
            raise QuotaExceeded(f"bundle needs {needed} bytes but the disk has {free} free")
        return upload

    def clean_other_partials(self, name: str, keep: Path) -> None:
        """Drop partial uploads of the same model for other bundles (superseded)."""
        for part in self.folder.glob(f"{name}--*.part"):
            if part != keep:
                part.unlink(missing_ok=True)
