"""Freshness and revocation for pushed bundles when the gateway has a ``--trust-root``.

The gateway remembers, under ``MODEL_ROOT/.trust/`` (written atomically):

- ``keyring.json``: the highest root-signed keyring it accepted. Bundles may carry a
  keyring; a higher version replaces the stored one (rotation, revocation), a lower
  or equal one is ignored, so trust metadata never goes back.
- ``sequences.json``: per model, the highest targets ``sequence`` it accepted and that
  bundle's manifest sha256. A lower sequence (a replayed or older bundle) is refused
  unless the push asks ``allow_older``; the same sequence passes only for the very same
  manifest (a retry of that bundle).

Formats and the threat model: docs/security.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_contracts.atomic_files import write_json_atomic
from edge_contracts.bundle.archive import open_archive
from edge_contracts.errors import BundleError
from edge_contracts.trust.canonical import format_utc, key_id_of_raw
from edge_contracts.trust.keyring import Keyring, verify_keyring
from edge_contracts.trust.targets import Targets, decode_signed_targets, verify_targets
from edge_server.errors import UpdateRejected

if TYPE_CHECKING:
    from edge_contracts.bundle.verify import VerifiedBundle

logger = logging.getLogger(__name__)

TRUST_DIR = ".trust"
KEYRING_FILE = "keyring.json"
SEQUENCES_FILE = "sequences.json"

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Installed:
    sequence: int
    manifest_sha256: str


class FreshnessGuard:
    """Decides whether a bundle's signed metadata is current; one per gateway."""

    def __init__(self, model_root: Path, root_public: bytes, clock: Clock = _utc_now) -> None:
        self.folder = model_root / TRUST_DIR
        self.root_public = root_public
        self.root_id = key_id_of_raw(root_public)
        self._clock = clock
        self._lock = threading.Lock()  # updates of different models verify in parallel
        self._keyring = self._load_keyring()
        self._sequences = self._load_sequences()

    @property
    def keyring_version(self) -> int:
        return self._keyring.version if self._keyring else 0

    def highest(self, model: str) -> Installed | None:
        return self._sequences.get(model)

    def _load_keyring(self) -> Keyring | None:
        path = self.folder / KEYRING_FILE
        try:
            envelope = json.loads(path.read_text(encoding="utf-8"))
            # Expired or not, it is what we last accepted: its version is the floor.
            return verify_keyring(envelope, self.root_public, self._clock(), allow_expired=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, BundleError) as exc:
            # Refusing to start would brick the board; refusing every bundle is safe.
            logger.error("%s is unusable (%s); no keyring until a bundle delivers one", path, exc)
            return None

    def _load_sequences(self) -> dict[str, Installed]:
        path = self.folder / SEQUENCES_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return {
                name: Installed(int(entry["sequence"]), str(entry["manifest_sha256"]))
                for name, entry in data.get("models", {}).items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.error("%s is unreadable (%s); sequences start again from 0", path, exc)
            return {}

    def _learn(self, offered: dict[str, Any] | None, now: datetime) -> Keyring:
        """The keyring to check with: the stored one, or a newer one the bundle carries."""
        current = self._keyring
        if offered is not None:
            try:
                keyring = verify_keyring(offered, self.root_public, now, allow_expired=True)
            except BundleError as exc:
                raise UpdateRejected(f"the keyring inside the bundle is refused: {exc}") from None
            if keyring.version <= self.keyring_version:
                if keyring.version < self.keyring_version:
                    logger.warning(
                        "ignoring keyring version %d inside a bundle: version %d is current",
                        keyring.version,
                        self.keyring_version,
                    )
            elif keyring.expires <= now:
                raise UpdateRejected(
                    f"the keyring inside the bundle (version {keyring.version}) expired at "
                    f"{format_utc(keyring.expires)}; sign a fresh one with model-tools keyring"
                )
            else:
                write_json_atomic(self.folder / KEYRING_FILE, dict(keyring.envelope))
                logger.warning(
                    "accepted keyring version %d (was %d): signing keys now %s",
                    keyring.version,
                    self.keyring_version,
                    ", ".join(k.key_id for k in keyring.keys) or "none",
                )
                self._keyring = current = keyring
        if current is None:
            raise UpdateRejected(
                f"this gateway trusts root key {self.root_id} but has no keyring yet; push a "
                "bundle packaged with --keyring (model-tools package --keyring FILE)"
            )
        if current.expires <= now:
            raise UpdateRejected(
                f"the gateway's keyring version {current.version} expired at "
                f"{format_utc(current.expires)}; push a bundle carrying a fresh keyring"
            )
        return current

    def _check_sequence(self, targets: Targets, allow_older: bool) -> None:
        installed = self._sequences.get(targets.name)
        if installed is None or targets.sequence > installed.sequence or allow_older:
            return
        if (targets.sequence, targets.manifest_sha256) == (
            installed.sequence,
            installed.manifest_sha256,
        ):
            return  # the same signed bundle again (a retry), not an older one
        what = (
            "older than installed"
            if targets.sequence < installed.sequence
            else "already used by another bundle; installed"
        )
        raise UpdateRejected(
            f"bundle {targets.name}:{targets.version} has sequence {targets.sequence}, {what} "
            f"sequence {installed.sequence}; a replayed or older bundle is refused (to roll back "
            "on purpose, push with --allow-older, or activate a version still on disk)"
        )

    def _remember(self, targets: Targets) -> None:
        installed = self._sequences.get(targets.name)
        if installed is not None and installed.sequence >= targets.sequence:
            return  # allow_older never lowers the floor
        self._sequences[targets.name] = Installed(targets.sequence, targets.manifest_sha256)
        document = {
            "models": {
                name: {"sequence": i.sequence, "manifest_sha256": i.manifest_sha256}
                for name, i in sorted(self._sequences.items())
            }
        }
        write_json_atomic(self.folder / SEQUENCES_FILE, document)

    def verify(
        self, bundle: Path, max_bytes: int, name: str, version: str, allow_older: bool
    ) -> VerifiedBundle:
        """Keyring, signed targets, sequence, then signature and files; remember the sequence.

        Raises UpdateRejected (or IntegrityError from the contents check) with the reason.
        """
        # Imported here: it loads `cryptography`, needed only for pushes.
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from edge_contracts.bundle.verify import verify_bundle

        archive = open_archive(bundle, max_bytes)
        if archive.signature_bytes is None:
            raise UpdateRejected(
                "bundle is not signed; this gateway (--trust-root) accepts only bundles with "
                "signed targets metadata (model-tools package --keyring --sequence)"
            )
        signed = decode_signed_targets(archive.signature_bytes)
        if signed is None:
            raise UpdateRejected(
                "bundle is signed the legacy way, without targets metadata (sequence, expiry); "
                "this gateway (--trust-root) refuses it: re-package with model-tools package "
                "--keyring FILE --sequence N"
            )
        with self._lock:
            now = self._clock()
            keyring = self._learn(dict(signed.keyring) if signed.keyring else None, now)
            try:
                targets = verify_targets(signed, archive.manifest_bytes, keyring, now)
            except BundleError as exc:
                raise UpdateRejected(f"bundle {name}:{version} is refused: {exc}") from None
            if (targets.name, targets.version) != (name, version):
                raise UpdateRejected(
                    f"signed targets name {targets.name} version {targets.version}, but the "
                    f"push is {name} version {version}"
                )
            self._check_sequence(targets, allow_older)
            public = keyring.signing_key(signed.key_id, targets.name, now).public_key
        # Hashing the files takes a while: not under the lock other models' pushes share.
        verified = verify_bundle(bundle, [Ed25519PublicKey.from_public_bytes(public)], max_bytes)
        with self._lock:
            self._check_sequence(targets, allow_older)
            self._remember(targets)
        return verified
