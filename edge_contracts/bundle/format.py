"""The model bundle format: layout constants and the bundle manifest schema.

A bundle is one uncompressed tar holding ``manifest.json`` (the serving manifest
plus ``format_version``, ``files``, signature metadata...), ``model.onnx``,
optionally ``golden/samples.npz``, and ``signature`` (a detached Ed25519
signature over the exact bytes of ``manifest.json``). See docs/bundle-format.md.
Imports only the stdlib and the serving manifest, so the gateway, the
orchestrator and model_tools all read bundles with this code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from edge_contracts.drift_reference import REFERENCE_KEY, parse_reference
from edge_contracts.errors import BundleError, ManifestError
from edge_contracts.json_limits import loads_limited
from edge_contracts.manifest import MANIFEST_FILE, Manifest, parse_manifest

__all__ = [
    "BUNDLE_SUFFIXES",
    "FORMAT_VERSION",
    "GOLDEN_FILE",
    "MANIFEST_FILE",
    "MAX_MANIFEST_BYTES",
    "MAX_SIGNATURE_BYTES",
    "MODEL_FILE",
    "SIGNATURE_FILE",
    "BundleFile",
    "BundleManifest",
    "check_member_path",
    "golden_key",
    "parse_bundle_manifest",
]

FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
SIGNATURE_FILE = "signature"
GOLDEN_FILE = "golden/samples.npz"
BUNDLE_SUFFIXES = (".edgebundle", ".tar")
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 4096
MAX_FILES = 64
# Always fullmatch: a "$" anchor would also accept a trailing newline.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def golden_key(kind: str, tensor: str) -> str:
    """Array name in golden/samples.npz: ``in.<input name>`` or ``out.<output name>``."""
    return f"{kind}.{tensor}"


@dataclass(frozen=True)
class BundleFile:
    """One payload file of a bundle, as the manifest records it."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class BundleManifest:
    """A validated bundle manifest; ``serving`` is what the gateway's model store reads."""

    format_version: int
    serving: Manifest
    files: Mapping[str, BundleFile]
    breaking_change: bool = False
    created_at: str = ""
    golden: Mapping[str, Any] | None = None
    document: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.serving.name

    @property
    def version(self) -> str:
        return self.serving.version


def check_member_path(path: str) -> str:
    """Refuse absolute paths, ``..``, backslashes and odd characters; return the path."""
    if not isinstance(path, str) or not path or len(path) > 256:
        raise BundleError(f"bundle path {path!r} is empty or too long")
    pure = PurePosixPath(path)
    if (
        pure.is_absolute()
        or "\\" in path
        or str(pure) != path
        or not all(_SEGMENT_RE.fullmatch(part) and part not in (".", "..") for part in pure.parts)
    ):
        raise BundleError(f"bundle path {path!r} is not a safe relative path")
    return path


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise BundleError(
            f"bundle manifest {what} must be 1-128 characters of letters, digits, '.', '_' "
            f"or '-' starting with a letter or digit, got {value!r}"
        )
    return value


def _parse_files(raw: Any) -> dict[str, BundleFile]:
    if not isinstance(raw, dict) or not raw:
        raise BundleError(
            "bundle manifest 'files' must be a non-empty object {path: {sha256, size}}"
        )
    if len(raw) > MAX_FILES:
        raise BundleError(f"bundle manifest lists {len(raw)} files, the limit is {MAX_FILES}")
    files: dict[str, BundleFile] = {}
    for path, entry in raw.items():
        check_member_path(path)
        if path in (MANIFEST_FILE, SIGNATURE_FILE):
            raise BundleError(f"bundle manifest must not list {path!r} in 'files'")
        if not isinstance(entry, dict):
            raise BundleError(f"files[{path!r}] must be an object with sha256 and size")
        digest, size = entry.get("sha256"), entry.get("size")
        if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
            raise BundleError(f"files[{path!r}].sha256 must be 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BundleError(f"files[{path!r}].size must be a non-negative integer")
        files[path] = BundleFile(path, digest, size)
    if MODEL_FILE not in files:
        raise BundleError(f"bundle manifest 'files' must include {MODEL_FILE!r}")
    return files


def parse_bundle_manifest(data: bytes) -> BundleManifest:
    """Decode and validate the bytes of a bundle's manifest.json."""
    document = loads_limited(data, "bundle manifest", BundleError, MAX_MANIFEST_BYTES)
    if not isinstance(document, dict):
        raise BundleError("bundle manifest must be a JSON object")
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError("bundle manifest needs an integer 'format_version'")
    if version > FORMAT_VERSION or version < 1:
        raise BundleError(
            f"bundle format_version {version} is not supported "
            f"(this reader knows 1..{FORMAT_VERSION})"
        )
    _check_name(document.get("name"), "name")
    _check_name(document.get("version"), "version")
    try:
        serving = parse_manifest(document)
        if REFERENCE_KEY in document:  # signed with the manifest: refuse it when unsound
            parse_reference(document[REFERENCE_KEY])
    except ManifestError as exc:
        raise BundleError(f"bundle manifest: {exc}") from None
    files = _parse_files(document.get("files"))
    breaking = document.get("breaking_change", False)
    if not isinstance(breaking, bool):
        raise BundleError("bundle manifest 'breaking_change' must be true or false")
    golden = document.get("golden")
    if golden is not None and (
        not isinstance(golden, dict)
        or not isinstance(golden.get("path"), str)
        or golden["path"] not in files
    ):
        raise BundleError("bundle manifest 'golden' must be an object whose 'path' is in 'files'")
    created_at = document.get("created_at", "")
    return BundleManifest(
        format_version=version,
        serving=serving,
        files=files,
        breaking_change=breaking,
        created_at=created_at if isinstance(created_at, str) else "",
        golden=golden,
        document=document,
    )
