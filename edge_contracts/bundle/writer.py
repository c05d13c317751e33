"""Writing bundles: the manifest document, its signature, and a deterministic tar.

Used by model_tools (package, sign) and by the orchestrator (re-signing); stdlib
only (with the stdlib-only ``edge_contracts.atomic_files``). Tar members are sorted
with zeroed owners and times, so the same inputs give the same bytes; the file gets
mode 0666 minus the umask, like any file a user publishes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_contracts.atomic_files import PUBLIC_FILE, create_temp_file
from edge_contracts.bundle.format import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    SIGNATURE_FILE,
    check_member_path,
    parse_bundle_manifest,
)

__all__ = ["Payload", "build_manifest_bytes", "file_entry", "write_bundle"]

Payload = Path | bytes
_CHUNK = 1 << 20


def file_entry(payload: Payload) -> dict[str, Any]:
    """``{"sha256", "size"}`` of a file on disk or of bytes in memory."""
    digest = hashlib.sha256()
    if isinstance(payload, bytes):
        digest.update(payload)
        return {"sha256": digest.hexdigest(), "size": len(payload)}
    size = 0
    with payload.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def build_manifest_bytes(document: Mapping[str, Any], payloads: Mapping[str, Payload]) -> bytes:
    """The manifest.json bytes: ``document`` plus ``format_version`` and ``files``, validated."""
    data = dict(document)
    data["format_version"] = FORMAT_VERSION
    data.setdefault("breaking_change", False)
    data["files"] = {check_member_path(p): file_entry(v) for p, v in sorted(payloads.items())}
    encoded = (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    parse_bundle_manifest(encoded)
    return encoded


def _add(tar: tarfile.TarFile, name: str, payload: Payload) -> None:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    info.mtime = 0
    if isinstance(payload, bytes):
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    else:
        info.size = payload.stat().st_size
        with payload.open("rb") as handle:
            tar.addfile(info, handle)


def write_bundle(
    destination: Path,
    manifest_bytes: bytes,
    payloads: Mapping[str, Payload],
    signature: bytes | None = None,
) -> Path:
    """Write the tar atomically: manifest.json, signature (if any), payloads sorted."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp_file(destination, PUBLIC_FILE)  # a bundle is published, not secret
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w:", format=tarfile.PAX_FORMAT) as tar:
                _add(tar, MANIFEST_FILE, manifest_bytes)
                if signature is not None:
                    _add(tar, SIGNATURE_FILE, signature)
                for name, payload in sorted(payloads.items()):
                    _add(tar, check_member_path(name), payload)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(destination)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return destination
