"""The model repository: models, versions, their bundles and provenance.

Publishing verifies the bundle exactly as a gateway would (Ed25519 signature by a
trusted key over the manifest, then every file's size and sha256), refuses a
version that exists already and bytes that were published before, and stores the
bundle content-addressed. Plain Python over SQLAlchemy; no gRPC.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from cloud_orchestrator.errors import BundleRefused, Conflict, InvalidRequest, NotFound
from cloud_orchestrator.registry.artifacts import ArtifactStore, FolderArtifacts, file_sha256
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Model, ModelVersion
from edge_contracts.bundle.archive import open_archive
from edge_contracts.bundle.signing import decode_signature, key_id, load_public_key
from edge_contracts.bundle.verify import verify_bundle
from edge_contracts.errors import BundleError

__all__ = ["ModelSummary", "Registry", "VersionInfo", "load_trusted_keys", "version_sort_key"]


def load_trusted_keys(paths: Iterable[Path]) -> tuple[Ed25519PublicKey, ...]:
    """Public keys from files, or every ``*.pub`` in a folder."""
    files: list[Path] = []
    for path in paths:
        found = sorted(path.glob("*.pub")) if path.is_dir() else [path]
        if not found:
            raise InvalidRequest(f"{path} holds no *.pub public key")
        files.extend(found)
    try:
        return tuple(load_public_key(p) for p in files)
    except BundleError as exc:
        raise InvalidRequest(str(exc)) from None


_UNTRUSTED_HINT = (
    "; publish bundles signed by one of those keys, or add the signer's public key to "
    "--trusted-keys if you trust it"
)


def _signed_by_stranger(bundle: Path, trusted_keys: Sequence[Ed25519PublicKey]) -> bool:
    """Whether a refused bundle carries a signature by a key not among ``trusted_keys``
    (then the refusal says what to do about it)."""
    try:
        archive = open_archive(bundle)
        if archive.signature_bytes is None:
            return False
        signer = decode_signature(archive.signature_bytes).key_id
    except BundleError:
        return False
    return signer not in {key_id(k) for k in trusted_keys}


def version_sort_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Numeric parts compare as numbers: 2 < 10, 1.9 < 1.10."""
    parts: list[tuple[int, int | str]] = []
    for piece in version.replace("-", ".").replace("_", ".").split("."):
        parts.append((0, int(piece)) if piece.isdigit() else (1, piece))
    return tuple(parts)


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: str
    sha256: str
    size_bytes: int
    key_id: str
    signature: str
    evaluation: dict[str, Any]
    labels: list[str]
    parent_version: str
    published_by: str
    published_at: float
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("manifest")
        data.pop("signature")
        return data


@dataclass(frozen=True)
class ModelSummary:
    name: str
    versions: int
    latest_version: str
    latest_published_at: float


def _info(model: str, row: ModelVersion) -> VersionInfo:
    return VersionInfo(
        model=model,
        version=row.version,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        key_id=row.key_id,
        signature=row.signature,
        evaluation=dict(row.evaluation or {}),
        labels=list(row.labels or []),
        parent_version=row.parent_version,
        published_by=row.published_by,
        published_at=row.published_at,
        manifest=dict(row.manifest or {}),
    )


def _lineage(document: dict[str, Any]) -> str:
    lineage = document.get("lineage")
    if isinstance(lineage, dict) and isinstance(lineage.get("parent_version"), str):
        return str(lineage["parent_version"])
    parent = document.get("parent_version")
    return parent if isinstance(parent, str) else ""


class Registry:
    def __init__(self, db: Database, artifacts: ArtifactStore) -> None:
        self.db = db
        self.artifacts = artifacts

    def publish(
        self,
        bundle: Path,
        trusted_keys: Sequence[Ed25519PublicKey],
        published_by: str = "",
        parent_version: str = "",
    ) -> VersionInfo:
        """Verify and store a bundle; raises BundleRefused, Conflict or InvalidRequest."""
        if not trusted_keys:
            raise InvalidRequest(
                "no trusted public keys (--trusted-keys): the registry only accepts bundles "
                "whose signature it can verify"
            )
        if not bundle.exists():
            raise NotFound(f"bundle file {bundle} does not exist")
        try:
            verified = verify_bundle(bundle, trusted_keys)
        except BundleError as exc:
            hint = _UNTRUSTED_HINT if _signed_by_stranger(bundle, trusted_keys) else ""
            raise BundleRefused(f"{bundle}: {exc}{hint}") from None
        sha256, size = file_sha256(bundle)
        manifest = verified.manifest
        document = dict(manifest.document)
        with self.db.session() as session:
            model = session.scalars(select(Model).where(Model.name == manifest.name)).first()
            if model is not None:
                existing = session.scalars(
                    select(ModelVersion).where(
                        ModelVersion.model_id == model.id, ModelVersion.version == manifest.version
                    )
                ).first()
                if existing is not None:
                    same = "the same bundle" if existing.sha256 == sha256 else "different bytes"
                    raise Conflict(
                        f"{manifest.name} version {manifest.version} is already published "
                        f"({same}, sha256 {existing.sha256[:16]}..); publish under a new version"
                    )
            twin = session.scalars(
                select(ModelVersion).where(ModelVersion.sha256 == sha256)
            ).first()
            if twin is not None:
                raise Conflict(f"this bundle (sha256 {sha256[:16]}..) is already published")
        try:
            with bundle.open("rb") as stream:
                self.artifacts.write(stream, sha256)
        except ValueError as exc:
            raise BundleRefused(str(exc)) from None
        now = time.time()
        evaluation = document.get("evaluation")
        with self.db.session() as session:
            model = session.scalars(select(Model).where(Model.name == manifest.name)).first()
            if model is None:
                model = Model(name=manifest.name, created_at=now)
                session.add(model)
                session.flush()
            row = ModelVersion(
                model_id=model.id,
                version=manifest.version,
                sha256=sha256,
                size_bytes=size,
                signature=verified.signature_bytes.decode("utf-8", "replace"),
                key_id=verified.key_id,
                evaluation=evaluation if isinstance(evaluation, dict) else {},
                labels=list(manifest.serving.labels),
                manifest=document,
                parent_version=parent_version or _lineage(document),
                published_by=published_by or _default_user(),
                published_at=now,
            )
            session.add(row)
        return _info(manifest.name, row)

    def models(self) -> list[ModelSummary]:
        with self.db.session() as session:
            rows = session.execute(
                select(Model.name, func.count(ModelVersion.id))
                .join(ModelVersion, ModelVersion.model_id == Model.id, isouter=True)
                .group_by(Model.name)
                .order_by(Model.name)
            ).all()
        summaries = []
        for name, count in rows:
            versions = self.versions(name)
            latest = versions[-1] if versions else None
            summaries.append(
                ModelSummary(
                    name,
                    int(count),
                    latest.version if latest else "",
                    latest.published_at if latest else 0.0,
                )
            )
        return summaries

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of a model, oldest first by version number."""
        with self.db.session() as session:
            model = session.scalars(select(Model).where(Model.name == name)).first()
            if model is None:
                raise NotFound(
                    f"no model named {name!r} in the registry (`edge-orchestrator models` "
                    "lists them)"
                )
            rows = session.scalars(
                select(ModelVersion).where(ModelVersion.model_id == model.id)
            ).all()
        infos = [_info(name, row) for row in rows]
        return sorted(infos, key=lambda v: version_sort_key(v.version))

    def version(self, name: str, version: str) -> VersionInfo:
        """One version; ``latest`` means the highest version number."""
        versions = self.versions(name)
        if version == "latest":
            if not versions:
                raise NotFound(f"model {name!r} has no published version")
            return versions[-1]
        for info in versions:
            if info.version == version:
                return info
        published = ", ".join(v.version for v in versions) or "none"
        raise NotFound(
            f"model {name!r} has no version {version!r} in the registry (published: {published})"
        )

    def latest_versions(self) -> dict[str, VersionInfo]:
        """The highest version of every model (for ``latest`` assignments)."""
        latest: dict[str, VersionInfo] = {}
        with self.db.session() as session:
            rows = session.execute(select(Model.name, ModelVersion).join(ModelVersion)).all()
        for name, row in rows:
            info = _info(name, row)
            best = latest.get(name)
            if best is None or version_sort_key(info.version) > version_sort_key(best.version):
                latest[name] = info
        return latest

    def require_bundle(self, info: VersionInfo) -> None:
        """NotFound when the artifact store lacks the version's bundle."""
        if self.artifacts.exists(info.sha256):
            return
        hint = ""
        if not self.db.is_sqlite and isinstance(self.artifacts, FolderArtifacts):
            hint = (
                "; orchestrators that share a PostgreSQL database share bundles only with "
                "--artifacts postgresql"
            )
        raise NotFound(
            f"the bundle of {info.model} version {info.version} (sha256 {info.sha256[:16]}..) "
            f"is missing from the artifact store ({self.artifacts.describe()}){hint}"
        )

    def bundle_source(self, info: VersionInfo) -> Callable[[int], Iterator[bytes]]:
        """What a push reads (``bundle_blocks`` of this version from an offset, each
        attempt afresh); NotFound now when the bundle is missing."""
        self.require_bundle(info)
        sha256 = info.sha256
        return lambda offset: self.artifacts.blocks(sha256, offset)

    def bundle_blocks(self, info: VersionInfo, offset: int = 0) -> Iterator[bytes]:
        """The version's bundle from ``offset``, a block (at most 256 KiB) at a time;
        NotFound now when it is missing, ArtifactCorrupt while reading damaged bytes."""
        self.require_bundle(info)
        return self.artifacts.blocks(info.sha256, offset)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
