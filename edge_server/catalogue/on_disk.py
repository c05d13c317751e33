"""What is on disk: ``MODEL_ROOT/<name>/<version>/model.onnx`` (+ manifest.json).

The store only reads the file system and picks versions; loading is the model
manager's job. An optional ``MODEL_ROOT/<name>/ACTIVE`` file names the version to
serve (written atomically by the lifecycle code); otherwise the highest version wins.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
ACTIVE_POINTER = "ACTIVE"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def is_valid_name(name: str) -> bool:
    """Model and version names: letters, digits, '.', '_', '-' (no path tricks)."""
    return bool(NAME_PATTERN.fullmatch(name)) and name not in (".", "..")


def version_sort_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order: "2" < "10", "1.9" < "1.10"; digits sort before letters."""
    parts = re.findall(r"\d+|[^\d]+", version)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


@dataclass(frozen=True)
class VersionOnDisk:
    """One version folder that holds a model file."""

    name: str
    version: str
    path: Path

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def sha256(self) -> str:
        stat = self.model_path.stat()
        return _file_sha256(str(self.model_path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """sha256 of a file, cached per (path, mtime, size): ListModels asks on every call and
    model files are written once (new versions get new folders)."""
    del mtime_ns, size  # part of the cache key only
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DiskCatalogue:
    """Read-only view of the model root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = []
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and is_valid_name(child.name) and self.versions(child.name):
                names.append(child.name)
        return names

    def versions(self, name: str) -> list[VersionOnDisk]:
        """Versions with a model file, ascending; half-written folders are skipped."""
        model_dir = self.root / name
        if not is_valid_name(name) or not model_dir.is_dir():
            return []
        found = [
            VersionOnDisk(name, child.name, child)
            for child in model_dir.iterdir()
            if child.is_dir() and is_valid_name(child.name) and (child / MODEL_FILE).is_file()
        ]
        return sorted(found, key=lambda v: version_sort_key(v.version))

    def find(self, name: str, version: str) -> VersionOnDisk | None:
        return next((v for v in self.versions(name) if v.version == version), None)

    def pointed_version(self, name: str) -> str | None:
        """The version named by the ACTIVE pointer file, if it exists and is readable."""
        pointer = self.root / name / ACTIVE_POINTER
        try:
            text = pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("cannot read %s: %s", pointer, exc)
            return None
        return text if is_valid_name(text) else None

    def startup_version(self, name: str, pinned: str | None) -> VersionOnDisk | None:
        """Pinned version > ACTIVE pointer > highest version."""
        versions = self.versions(name)
        if not versions:
            return None
        for wanted in (pinned, self.pointed_version(name)):
            if wanted:
                match = next((v for v in versions if v.version == wanted), None)
                if match is not None:
                    return match
                logger.warning(
                    "model %s: version %s is not on disk; using the highest instead", name, wanted
                )
        return versions[-1]
