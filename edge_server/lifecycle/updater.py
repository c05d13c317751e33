"""ModelUpdate in the domain: receive a bundle, verify it, load it, then activate,
stage or shadow it — or reject it while the active version keeps serving.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_contracts.atomic_files import remove_tree, rename_dir_atomic
from edge_contracts.bundle.archive import extract_files, extracted_bytes, open_archive
from edge_contracts.bundle.format import MANIFEST_FILE, SIGNATURE_FILE, parse_bundle_manifest
from edge_server.catalogue.on_disk import VersionOnDisk, is_valid_name
from edge_server.catalogue.serving import ServingCatalogue, ServingModel, warm_up
from edge_server.errors import EdgeError, InvalidInput, UpdateInProgress, UpdateRejected
from edge_server.lifecycle.activation import VersionActivator
from edge_server.lifecycle.ledger import Ledger, VersionState
from edge_server.lifecycle.reasons import public_reason
from edge_server.lifecycle.uploads import Upload, UploadArea
from edge_server.lifecycle.validation import validate_model

if TYPE_CHECKING:  # cryptography is imported only when a bundle is actually verified
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_contracts.bundle.verify import VerifiedBundle
    from edge_server.lifecycle.freshness import FreshnessGuard

logger = logging.getLogger(__name__)


class Mode(enum.Enum):
    ACTIVATE = "ACTIVATE"
    STAGE = "STAGE"
    SHADOW = "SHADOW"


class Stage(enum.Enum):
    RECEIVING = "RECEIVING"
    VERIFYING = "VERIFYING"
    LOADING = "LOADING"
    WARMING_UP = "WARMING_UP"
    VALIDATING = "VALIDATING"
    ACTIVE = "ACTIVE"
    STAGED = "STAGED"
    SHADOW = "SHADOW"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class UpdateHeader:
    name: str
    version: str
    size: int
    sha256: str
    mode: Mode = Mode.ACTIVATE
    source: str = ""
    allow_older: bool = False  # an operator's deliberate rollback (docs/security.md)


@dataclass(frozen=True)
class Progress:
    stage: Stage
    bytes_received: int = 0
    reason: str = ""


@dataclass(frozen=True)
class TrustPolicy:
    trusted_keys: tuple[Ed25519PublicKey, ...]
    allow_unsigned: bool
    freshness: FreshnessGuard | None = None  # set by --trust-root: legacy signatures refused


RejectionListener = Callable[[str, str], None]  # model, reason


def _check_header(header: UpdateHeader) -> None:
    for what, value in (("model_name", header.name), ("model_version", header.version)):
        if not is_valid_name(value):
            raise InvalidInput(
                f"header {what} {value!r} must be 1-128 letters, digits, '.', '_' or '-' "
                "starting with a letter or digit",
                field=f"header.{what}",
            )
    if header.size <= 0:
        raise InvalidInput("header bundle_size must be > 0", field="header.bundle_size")
    sha = header.sha256
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise InvalidInput(
            "header bundle_sha256 must be 64 lowercase hex digits", field="header.bundle_sha256"
        )


class ModelUpdater:
    """One instance per gateway; at most one update per model at a time."""

    def __init__(
        self,
        manager: ServingCatalogue,
        activator: VersionActivator,
        ledger: Ledger,
        uploads: UploadArea,
        trust: TrustPolicy,
    ) -> None:
        self.manager = manager
        self.activator = activator
        self.ledger = ledger
        self.uploads = uploads
        self.trust = trust
        self._busy: set[str] = set()
        self.on_rejected: list[RejectionListener] = []

    @contextmanager
    def session(self, header: UpdateHeader) -> Iterator[UpdateSession]:
        """Validate the header, take the model's update lock, open (or resume) the upload."""
        _check_header(header)
        if header.name in self._busy:
            raise UpdateInProgress(
                f"an update of model {header.name!r} is already running; retry when it ends"
            )
        self._busy.add(header.name)
        try:
            self.activator.ensure_pointer(header.name)
            upload = self.uploads.begin(header.name, header.version, header.size, header.sha256)
            yield UpdateSession(self, header, upload)
        finally:
            self._busy.discard(header.name)

    def reject(self, header: UpdateHeader, reason: str, sha256: str = "") -> Progress:
        self.ledger.update(
            header.name,
            header.version,
            state=VersionState.REJECTED,
            reason=reason,
            sha256=sha256 or header.sha256,
            size_bytes=header.size,
            source=header.source,
        )
        logger.warning("model %s version %s rejected: %s", header.name, header.version, reason)
        for listener in self.on_rejected:
            listener(header.name, reason)
        return Progress(Stage.REJECTED, header.size, reason)


class UpdateSession:
    def __init__(self, updater: ModelUpdater, header: UpdateHeader, upload: Upload) -> None:
        self._updater = updater
        self.header = header
        self.upload = upload

    @property
    def resume_offset(self) -> int:
        return self.upload.offset

    def append(self, offset: int, data: bytes) -> int:
        self.upload.append(offset, data)
        return self.upload.offset

    def existing_outcome(self) -> Progress | None:
        """Idempotence: the same bundle pushed again is answered from the ledger."""
        record = self._updater.ledger.load(self.header.name).record(self.header.version)
        if record is None or record.state is VersionState.REJECTED:
            return None
        if record.sha256 != self.header.sha256:
            return Progress(
                Stage.REJECTED,
                0,
                f"version {self.header.version} of {self.header.name} already exists with "
                "different content; publish under a new version",
            )
        stage = {
            VersionState.ACTIVE: Stage.ACTIVE,
            VersionState.SHADOW: Stage.SHADOW,
        }.get(record.state, Stage.STAGED)
        return Progress(stage, self.header.size, "this bundle is already on the gateway")

    async def commit(self) -> AsyncIterator[Progress]:
        """Verify, load, warm, validate, then apply the activation mode."""
        header = self.header
        updater = self._updater
        loop = asyncio.get_running_loop()
        model_dir = updater.manager.store.root / header.name
        staging = model_dir / f".staging-{header.version}-{os.getpid()}"
        try:
            yield Progress(Stage.VERIFYING, self.upload.offset)
            bundle_path = await loop.run_in_executor(None, self.upload.finish)
            await loop.run_in_executor(None, self._verify_and_extract, bundle_path, staging)
            yield Progress(Stage.LOADING, self.upload.offset)
            found = VersionOnDisk(header.name, header.version, staging)
            model = await updater.manager.load_candidate(found, warm=False)
            yield Progress(Stage.WARMING_UP, self.upload.offset)
            await loop.run_in_executor(None, warm_up, model.session)
            yield Progress(Stage.VALIDATING, self.upload.offset)
            slot = updater.manager.slot(header.name)
            active = slot.active if slot else None
            await loop.run_in_executor(None, validate_model, model, staging, active)
        except EdgeError as exc:
            remove_tree(staging)
            self.upload.discard()
            label = f"{header.name}:{header.version}"
            root = updater.manager.store.root
            yield updater.reject(
                header, public_reason(str(exc), label, self.upload.path, staging, root)
            )
            return
        except Exception:  # a bug: still no leftovers, still a ledger entry; the log has it
            remove_tree(staging)
            self.upload.discard()
            updater.reject(header, "the gateway failed while checking this bundle; see its log")
            raise
        final = model_dir / header.version
        if final.exists():  # an earlier copy that never made it into the ledger
            remove_tree(final)
        rename_dir_atomic(staging, final)
        self.upload.discard()
        updater.ledger.update(
            header.name,
            header.version,
            state=VersionState.STAGED,
            sha256=header.sha256,
            size_bytes=header.size,
            source=header.source,
            received_at=time.time(),
            reason="",
        )
        updater.manager.refresh_versions(header.name)
        yield self._apply(model)

    def _verify_and_extract(self, bundle_path: Path, staging: Path) -> VerifiedBundle | None:
        # Imported here: it loads `cryptography` (about 8 MiB), needed only for pushes.
        from edge_contracts.bundle.verify import check_contents, verify_bundle

        trust = self._updater.trust
        limit = self._updater.uploads.limits.max_bundle_bytes
        if staging.exists():
            remove_tree(staging)
        archive = open_archive(bundle_path, limit)
        if trust.freshness is not None:
            header = self.header
            bundle = trust.freshness.verify(
                bundle_path, limit, header.name, header.version, header.allow_older
            )
            manifest = bundle.manifest
            extras = {MANIFEST_FILE: bundle.manifest_bytes, SIGNATURE_FILE: bundle.signature_bytes}
        elif archive.signature_bytes is None and trust.allow_unsigned:
            manifest = parse_bundle_manifest(archive.manifest_bytes)
            check_contents(archive, manifest)
            bundle = None
            extras = {MANIFEST_FILE: archive.manifest_bytes}
        else:
            if not trust.trusted_keys:
                raise UpdateRejected(
                    "this gateway has no trusted public keys (--trusted-keys) and does not "
                    "allow unsigned bundles (--allow-unsigned)"
                )
            bundle = verify_bundle(bundle_path, trust.trusted_keys, limit)
            manifest = bundle.manifest
            extras = {MANIFEST_FILE: bundle.manifest_bytes, SIGNATURE_FILE: bundle.signature_bytes}
        if (manifest.name, manifest.version) != (self.header.name, self.header.version):
            raise UpdateRejected(
                f"bundle holds {manifest.name} version {manifest.version}, but the push header "
                f"says {self.header.name} version {self.header.version}"
            )
        # Counted from the verified sizes before the first byte is written.
        self._updater.uploads.reserve_extraction(extracted_bytes(manifest.files, extras))
        extract_files(bundle_path, staging, manifest.files, extras)
        return bundle

    def _apply(self, model: ServingModel) -> Progress:
        updater = self._updater
        header = self.header
        if header.mode is Mode.ACTIVATE:
            updater.activator.commit_activation(model)
            return Progress(Stage.ACTIVE, header.size, "activated")
        if header.mode is Mode.SHADOW:
            updater.ledger.update(header.name, header.version, state=VersionState.SHADOW)
            updater.manager.set_shadow(model, header.name)
            return Progress(Stage.SHADOW, header.size, "running in shadow on sampled traffic")
        return Progress(Stage.STAGED, header.size, "verified and staged; activate it when ready")
