"""Per-model record of every version the gateway received, and the active pointer.

``MODEL_ROOT/<name>/ACTIVE`` holds the serving version (the start-up authority);
``MODEL_ROOT/<name>/versions.json`` holds each version's state, provenance and the
reason for any rejection or rollback, plus the rollback target. Both are replaced
atomically; versions.json is written before ACTIVE, so a crash between the two
leaves the old version active with a consistent rollback target.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_contracts.atomic_files import write_bytes_atomic, write_json_atomic
from edge_server.catalogue.on_disk import ACTIVE_POINTER, is_valid_name

logger = logging.getLogger(__name__)

LEDGER_FILE = "versions.json"


class VersionState(enum.Enum):
    STAGED = "STAGED"  # verified and loadable, not serving
    ACTIVE = "ACTIVE"
    SHADOW = "SHADOW"  # runs beside the active version on sampled traffic
    INACTIVE = "INACTIVE"  # served before, replaced by a newer activation
    REJECTED = "REJECTED"  # failed verification; never served
    ROLLED_BACK = "ROLLED_BACK"  # was active, replaced by its predecessor


@dataclass
class VersionRecord:
    version: str
    state: VersionState
    sha256: str = ""
    size_bytes: int = 0
    source: str = ""
    received_at: float = 0.0
    activated_at: float = 0.0
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> VersionRecord:
        values = dict(data)
        values["state"] = VersionState(str(values["state"]))
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class ModelLedger:
    records: dict[str, VersionRecord] = field(default_factory=dict)
    rollback_target: str = ""

    def record(self, version: str) -> VersionRecord | None:
        return self.records.get(version)


class Ledger:
    """Reads and writes ledgers under the model root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, name: str) -> bool:
        """Whether ``name`` has a ledger: the gateway received a version of it."""
        return is_valid_name(name) and (self.root / name / LEDGER_FILE).is_file()

    def model_names(self) -> list[str]:
        """Every model with a ledger, including ones no version of which ever served."""
        if not self.root.is_dir():
            return []
        return sorted(child.name for child in self.root.iterdir() if self.has(child.name))

    def load(self, name: str) -> ModelLedger:
        path = self.root / name / LEDGER_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records = {
                version: VersionRecord.from_json(entry)
                for version, entry in data.get("versions", {}).items()
            }
            return ModelLedger(records, str(data.get("rollback_target", "")))
        except FileNotFoundError:
            return ModelLedger()
        except (OSError, ValueError, TypeError, KeyError) as exc:
            logger.error("%s is unreadable (%s); starting a new ledger", path, exc)
            return ModelLedger()

    def save(self, name: str, ledger: ModelLedger) -> None:
        document = {
            "versions": {v: r.to_json() for v, r in sorted(ledger.records.items())},
            "rollback_target": ledger.rollback_target,
        }
        write_json_atomic(self.root / name / LEDGER_FILE, document)

    def point_active(self, name: str, version: str) -> None:
        write_bytes_atomic(self.root / name / ACTIVE_POINTER, f"{version}\n".encode())

    def update(self, name: str, version: str, **changes: object) -> ModelLedger:
        """Create or change one record and save the ledger."""
        ledger = self.load(name)
        record = ledger.records.get(version)
        if record is None:
            record = VersionRecord(version=version, state=VersionState.STAGED)
            record.received_at = time.time()
            ledger.records[version] = record
        for key, value in changes.items():
            setattr(record, key, value)
        self.save(name, ledger)
        return ledger
