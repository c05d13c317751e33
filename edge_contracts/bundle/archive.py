"""Reading and extracting bundle tar files with size and path-traversal guards.

Only regular files and folders with safe relative names are accepted (no links,
devices, fifos, sparse files, absolute paths or ``..``): a sparse member's holes
would be written out as zeros, so a small upload could fill the disk. The manifest
and signature are size- and depth-limited and read into memory; payload files are
streamed and hashed, and extraction copies exactly the size the verified manifest
declares, so the caller knows every byte it will write before the first one. It
writes into a temporary folder beside the target, checks every hash, fsyncs and
renames.
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
from edge_contracts.json_limits import check_json_depth

__all__ = [
    "DEFAULT_MAX_BUNDLE_BYTES",
    "BundleArchive",
    "check_member_kind",
    "extract_files",
    "extracted_bytes",
    "hash_member",
    "open_archive",
]

DEFAULT_MAX_BUNDLE_BYTES = 4 << 30
# Files plus the folders that hold them: the payload files (MAX_FILES), manifest and
# signature, and room for a folder per file.
MAX_MEMBERS = 2 * MAX_FILES + 2
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BundleArchive:
    """What a bundle tar holds: manifest and signature bytes, and payload sizes."""

    path: Path
    manifest_bytes: bytes
    signature_bytes: bytes | None
    members: Mapping[str, int]


_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a fifo",
    tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}


def check_member_kind(member: tarfile.TarInfo) -> None:
    """Refuse anything but a plain regular file or a folder.

    tarfile counts GNU sparse members (type ``S``, and PAX ``GNU.sparse.*`` headers on
    an ordinary type ``0``) as regular files (``isfile()``), so the type byte, the parsed
    sparse map and the PAX keys are all checked. Other PAX keys that tarfile applies
    (``path``, ``size``) are already reflected in the name and size checked by callers.
    """
    if member.type == tarfile.DIRTYPE:
        return
    sparse_keys = [k for k in member.pax_headers if k.startswith("GNU.sparse")]
    if member.sparse is not None or sparse_keys or member.type == tarfile.GNUTYPE_SPARSE:
        kind = "a sparse file"
    elif member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        if "linkpath" not in member.pax_headers:
            return
        kind = "a file with a PAX linkpath"
    else:
        kind = _KINDS.get(member.type, f"of tar type {member.type!r}")
    raise BundleError(
        f"bundle member {member.name!r} is {kind}, not a regular file; a bundle holds only "
        "regular files and folders"
    )


def extracted_bytes(files: Mapping[str, BundleFile], extra: Mapping[str, bytes]) -> int:
    """Bytes ``extract_files`` writes for these arguments (known before it writes any)."""
    return sum(entry.size for entry in files.values()) + sum(len(d) for d in extra.values())


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise BundleError(f"bundle not found: {path}") from None
    except (tarfile.TarError, OSError, ValueError) as exc:  # ValueError: a bad sparse map
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
    total = seen = 0
    with _open_tar(path) as tar:
        try:
            for member in tar:
                name = check_member_path(member.name.rstrip("/") if member.isdir() else member.name)
                check_member_kind(member)
                # Folders count too: tarfile keeps every member's header in memory.
                seen += 1
                if seen > MAX_MEMBERS:
                    raise BundleError(f"bundle has more than {MAX_MEMBERS} members")
                if member.isdir():
                    continue
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
        except (tarfile.TarError, ValueError) as exc:  # ValueError: a malformed sparse map
            raise BundleError(f"{path}: corrupt tar ({exc})") from None
    if manifest_bytes is None:
        raise BundleError(f"{path} has no {MANIFEST_FILE}; not a model bundle")
    # Before any json.loads (the signature is decoded before the manifest is trusted).
    check_json_depth(manifest_bytes, "bundle manifest", BundleError)
    if signature_bytes is not None:
        check_json_depth(signature_bytes, "bundle signature", IntegrityError)
    return BundleArchive(path, manifest_bytes, signature_bytes, members)


def _copy_hashing(source: IO[bytes], target: IO[bytes] | None, limit: int) -> tuple[str, int]:
    """Copy at most ``limit`` bytes (one more is read to tell a longer member apart)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(min(_CHUNK, limit - size + 1)):
        size += len(chunk)
        if size > limit:
            raise IntegrityError(f"member is larger than the {limit} bytes the manifest declares")
        digest.update(chunk)
        if target is not None:
            target.write(chunk)
    return digest.hexdigest(), size


def _member(tar: tarfile.TarFile, name: str, size: int | None = None) -> IO[bytes]:
    """The member's stream, after its kind (and, given ``size``, its declared size) check."""
    try:
        member = tar.getmember(name)
    except KeyError:
        raise IntegrityError(f"bundle lacks {name!r}, which its manifest lists") from None
    check_member_kind(member)
    if size is not None and member.size != size:
        raise IntegrityError(
            f"{name} is {member.size} bytes in the tar, the manifest says {size}: "
            "the bundle was modified"
        )
    handle = tar.extractfile(member)
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
    ``folder_mode`` minus the umask. It writes exactly ``extracted_bytes(files, extra)``
    bytes: a member whose tar size differs from the manifest is refused before any copy.
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
                with _member(tar, name, entry.size) as source, target.open("wb") as out:
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
