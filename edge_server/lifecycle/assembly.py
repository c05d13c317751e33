"""Build the lifecycle parts (ledger, uploads, activation, updates, rollback watch)
from settings and connect them to the serving catalogue and the request statistics."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_server.catalogue.serving import ServingCatalogue
from edge_server.inference.statistics import StatisticsBook
from edge_server.lifecycle.activation import VersionActivator
from edge_server.lifecycle.ledger import Ledger
from edge_server.lifecycle.updater import ModelUpdater, TrustPolicy
from edge_server.lifecycle.uploads import UploadArea, UploadLimits
from edge_server.lifecycle.watch import RollbackWatcher, WatchPolicy
from edge_server.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_server.lifecycle.freshness import FreshnessGuard

logger = logging.getLogger(__name__)


def trusted_key_files(paths: tuple[Path, ...]) -> list[Path]:
    """The key files ``--trusted-keys`` names: files as given, folders' ``*.pub``."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.pub")) if path.is_dir() else [path])
    return files


def load_trusted_keys(paths: tuple[Path, ...]) -> tuple[Ed25519PublicKey, ...]:
    """Public keys from files, or every ``*.pub`` in a folder."""
    if not paths:
        return ()
    # Imported only when keys are configured: `cryptography` costs ~8 MiB of memory.
    from edge_contracts.bundle.signing import key_id, load_public_key

    keys = tuple(load_public_key(p) for p in trusted_key_files(paths))
    if keys:
        logger.info("trusting bundle signatures by keys %s", ", ".join(key_id(k) for k in keys))
    return keys


def freshness_guard(root: Path, trust_root: Path | None) -> FreshnessGuard | None:
    """The guard of signed metadata when ``--trust-root`` is set, else None (legacy trust)."""
    if trust_root is None:
        return None
    # Imported only when a root is configured: `cryptography` costs ~8 MiB of memory.
    from edge_contracts.bundle.signing import load_public_key
    from edge_contracts.trust.canonical import raw_public_key
    from edge_server.lifecycle.freshness import FreshnessGuard

    guard = FreshnessGuard(root, raw_public_key(load_public_key(trust_root)))
    logger.info(
        "trust root %s; keyring version %d; bundles need signed sequence and expiry",
        guard.root_id,
        guard.keyring_version,
    )
    return guard


def remove_leftovers(root: Path) -> None:
    """Half-extracted or half-deleted folders from a crash are never served; drop them."""
    if not root.is_dir():
        return
    for model_dir in root.iterdir():
        if not model_dir.is_dir():
            continue
        for child in model_dir.iterdir():
            if child.is_dir() and child.name.startswith((".staging-", ".trash-")):
                logger.warning("removing leftover %s from an interrupted update", child)
                shutil.rmtree(child, ignore_errors=True)


@dataclass
class Lifecycle:
    ledger: Ledger
    activator: VersionActivator
    updater: ModelUpdater
    watcher: RollbackWatcher

    @classmethod
    def build(
        cls, settings: Settings, manager: ServingCatalogue, statistics: StatisticsBook
    ) -> Lifecycle:
        root = Path(settings.server.model_root)
        remove_leftovers(root)
        ledger = Ledger(root)
        activator = VersionActivator(manager, ledger, settings.lifecycle.keep_versions)
        trust = TrustPolicy(
            load_trusted_keys(settings.lifecycle.trusted_keys),
            settings.lifecycle.allow_unsigned,
            freshness_guard(root, settings.lifecycle.trust_root),
        )
        if trust.freshness is None and trust.trusted_keys:
            logger.warning(
                "legacy bundle trust (--trusted-keys without --trust-root): no expiry, "
                "replay or revocation checks; an old signed bundle can roll this gateway back "
                "(docs/security.md)"
            )
        if not trust.trusted_keys and not trust.allow_unsigned and trust.freshness is None:
            logger.warning(
                "no --trusted-keys and no --allow-unsigned: ModelUpdate pushes will be rejected"
            )
        uploads = UploadArea(
            root,
            UploadLimits(settings.lifecycle.max_bundle_bytes, settings.lifecycle.disk_quota_bytes),
        )
        updater = ModelUpdater(manager, activator, ledger, uploads, trust)
        watcher = RollbackWatcher(
            manager,
            activator,
            statistics,
            WatchPolicy(
                window_seconds=settings.lifecycle.rollback_window_seconds,
                min_requests=settings.lifecycle.rollback_min_requests,
                max_fault_rate_increase=settings.lifecycle.rollback_max_fault_rate_increase,
                max_p99_ratio=settings.lifecycle.rollback_max_p99_ratio,
            ),
        )

        return cls(ledger, activator, updater, watcher)
