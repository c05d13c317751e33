"""Reading and extracting bundle tar files with size and path-traversal guards.

Only regular files with safe relative names are accepted (no links, devices,
absolute paths or ``..``); the manifest and signature are size-limited and read
into memory; payload files are streamed and hashed. Extraction writes into a
temporary folder beside the target, checks every hash, fsyncs and renames.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edge_contracts.atomic_files import create_temp_dir
from edge_contracts.bundle.format import (
    MANIFEST_FILE,
    MAX_FILES,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_FILE,
    BundleFile,
    check_member_path,
)
from edge_contracts.errors import BundleError, IntegrityError

__all__ = [
    "DEFAULT_MAX_BUNDLE_BYTES",
    "BundleArchive",
    "extract_files",
    "hash_member",
    "open_archive",
]

DEFAULT_MAX_BUNDLE_BYTES = 4 << 30
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BundleArchive:
    """What a bundle tar holds: manifest and signature bytes, and payload sizes."""

    path: Path
    manifest_bytes: bytes
    signature_bytes: bytes | None
    members: Mapping[str, int]


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise BundleError(f"bundle not found: {path}") from None
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{path} is not an uncompressed tar bundle ({exc})") from None


def _read_small(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    if member.size > limit:
        raise BundleError(f"{member.name} is {member.size} bytes, the limit is {limit}")
    handle = tar.extractfile(member)
    if handle is None:
        raise BundleError(f"{member.name} is not a regular file")
    with handle:
        return handle.read(limit + 1)[:limit]


def open_archive(path: Path, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> BundleArchive:
    """Scan a bundle: validate every member, read manifest.json and signature."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BundleError(f"bundle not found: {path}") from None
    if size > max_bytes:
        raise BundleError(f"bundle {path} is {size} bytes, the limit is {max_bytes}")
    members: dict[str, int] = {}
    manifest_bytes: bytes | None = None
    signature_bytes: bytes | None = None
    total = 0
    with _open_tar(path) as tar:
        try:
            for member in tar:
                name = check_member_path(member.name.rstrip("/") if member.isdir() else member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BundleError(f"bundle member {name!r} is not a regular file")
                if name in members:
                    raise BundleError(f"bundle member {name!r} appears twice")
                if len(members) >= MAX_FILES + 2:
                    raise BundleError(f"bundle has more than {MAX_FILES + 2} members")
                total += member.size
                if total > max_bytes:
                    raise BundleError(f"bundle content exceeds {max_bytes} bytes")
                members[name] = member.size
                if name == MANIFEST_FILE:
                    manifest_bytes = _read_small(tar, member, MAX_MANIFEST_BYTES)
                elif name == SIGNATURE_FILE:
                    signature_bytes = _read_small(tar, member, MAX_SIGNATURE_BYTES)
        except tarfile.TarError as exc:
            raise BundleError(f"{path}: corrupt tar ({exc})") from None
    if manifest_bytes is None:
        raise BundleError(f"{path} has no {MANIFEST_FILE}; not a model bundle")
    return BundleArchive(path, manifest_bytes, signature_bytes, members)


def _copy_hashing(source: IO[bytes], target: IO[bytes] | None, limit: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise IntegrityError(f"member is larger than the {limit} bytes the manifest declares")
        digest.update(chunk)
        if target is not None:
            target.write(chunk)
    return digest.hexdigest(), size


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        handle = tar.extractfile(name)
    except KeyError:
        raise IntegrityError(f"bundle lacks {name!r}, which its manifest lists") from None
    if handle is None:
        raise BundleError(f"bundle member {name!r} is not a regular file")
    return handle


def hash_member(path: Path, name: str, limit: int = DEFAULT_MAX_BUNDLE_BYTES) -> tuple[str, int]:
    """sha256 hex digest and size of one member, streamed."""
    with _open_tar(path) as tar, _member(tar, name) as handle:
        return _copy_hashing(handle, None, limit)


def _check(entry: BundleFile, digest: str, size: int) -> None:
    if size != entry.size or digest != entry.sha256:
        raise IntegrityError(
            f"{entry.path} does not match the manifest (sha256 {digest[:12]}.., {size} bytes; "
            f"expected {entry.sha256[:12]}.., {entry.size} bytes): the bundle was modified"
        )


def extract_files(
    path: Path,
    destination: Path,
    files: Mapping[str, BundleFile],
    extra: Mapping[str, bytes],
    folder_mode: int = 0o700,
) -> Path:
    """Extract ``files`` (hash-checked) plus in-memory ``extra`` files into a new folder.

    ``destination`` must not exist; it appears complete or not at all, with
    ``folder_mode`` minus the umask.
    """
    if destination.exists():
        raise BundleError(f"{destination} already exists; refusing to overwrite it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = create_temp_dir(destination, folder_mode)
    try:
        with _open_tar(path) as tar:
            for name, entry in sorted(files.items()):
                target = staging / check_member_path(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                with _member(tar, name) as source, target.open("wb") as out:
                    digest, size = _copy_hashing(source, out, entry.size)
                    out.flush()
                    os.fsync(out.fileno())
                _check(entry, digest, size)
        for name, data in extra.items():
            target = staging / check_member_path(name)
            with target.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        staging.replace(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination
