"""Activation, rollback and retention of versions, persisted in the ledger.

Order of effects for an activation: load + warm the new version beside the old
(done by the caller), write the ledger (rollback target = the old version), replace
the ACTIVE pointer, then swap the in-memory reference. A crash before the pointer
is replaced leaves the old version active at restart; after, the new one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge_contracts.atomic_files import remove_tree
from edge_server.catalogue.on_disk import VersionOnDisk, version_sort_key
from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.errors import ModelNotFound, VersionNotActive
from edge_server.lifecycle.ledger import Ledger, VersionState

logger = logging.getLogger(__name__)

ActivationListener = Callable[[ServingModel, ServingModel | None], None]
RollbackListener = Callable[[str, str, str], None]  # model, from version, reason


class VersionActivator:
    """Makes versions active and takes them back, keeping disk and memory in step."""

    def __init__(self, manager: ServingCatalogue, ledger: Ledger, keep_versions: int) -> None:
        self.manager = manager
        self.ledger = ledger
        self.keep_versions = keep_versions
        self.on_activated: list[ActivationListener] = []
        self.on_rolled_back: list[RollbackListener] = []

    def ensure_pointer(self, name: str) -> None:
        """Pin the serving version in ACTIVE before the first update touches the model,
        so a half-finished update can never win the 'highest version' rule at restart."""
        slot = self.manager.slot(name)
        if slot is None or slot.active is None:
            return
        if self.manager.store.pointed_version(name) != slot.active.version:
            self.ledger.point_active(name, slot.active.version)

    def commit_activation(self, model: ServingModel, reason: str = "") -> ServingModel | None:
        """Persist and swap in an already loaded, verified version. Returns the old one."""
        name = model.name
        slot = self.manager.slot(name)
        previous = slot.active if slot else None
        ledger = self.ledger.load(name)
        now = time.time()
        for version, record in ledger.records.items():
            if record.state is VersionState.ACTIVE and version != model.version:
                record.state = VersionState.INACTIVE
        if model.version not in ledger.records:
            self.ledger.save(name, ledger)
            ledger = self.ledger.update(name, model.version, source="disk")
        record = ledger.records[model.version]
        record.state = VersionState.ACTIVE
        record.activated_at = now
        record.reason = reason
        if previous is not None and previous.version != model.version:
            ledger.rollback_target = previous.version
        self.ledger.save(name, ledger)
        self.ledger.point_active(name, model.version)
        self.manager.install(model)
        for listener in self.on_activated:
            listener(model, previous)
        self.prune(name)
        return previous

    async def activate_on_disk(self, name: str, version: str) -> ServingModel:
        """ActivateModel: load a version already on disk and make it active."""
        found = self.manager.store.find(name, version)
        if found is None:
            raise ModelNotFound(f"model {name!r} has no version {version!r} on disk")
        record = self.ledger.load(name).record(version)
        if record is not None and record.state is VersionState.REJECTED:
            raise VersionNotActive(
                f"model {name!r} version {version!r} was rejected ({record.reason}); push a "
                "fixed version instead"
            )
        slot = self.manager.slot(name)
        if slot is not None and slot.active is not None and slot.active.version == version:
            return slot.active
        self.ensure_pointer(name)
        model = await self.manager.load(found)
        self.commit_activation(model)
        return model

    async def shadow_on_disk(self, name: str, version: str) -> ServingModel:
        """Run a verified version already on disk (staged, or shadowed before and ended)
        in shadow again: a new evidence-gated rollout of it needs no download."""
        found = self.manager.store.find(name, version)
        if found is None:
            raise ModelNotFound(f"model {name!r} has no version {version!r} on disk")
        record = self.ledger.load(name).record(version)
        if record is not None and record.state is VersionState.REJECTED:
            raise VersionNotActive(
                f"model {name!r} version {version!r} was rejected ({record.reason})"
            )
        slot = self.manager.slot(name)
        if slot is not None and slot.shadow is not None and slot.shadow.version == version:
            return slot.shadow
        if slot is not None and slot.active is not None and slot.active.version == version:
            raise VersionNotActive(f"model {name!r} version {version!r} is the active one")
        model = await self.manager.load(found)
        self.ledger.update(name, version, state=VersionState.SHADOW, reason="")
        self.manager.set_shadow(model, name)
        return model

    def end_shadow(self, name: str, version: str, reason: str) -> None:
        """Stop running ``version`` in shadow; its verified files stay, STAGED, so a later
        decision can still activate it without a download (an evidence gate that failed
        leaves the candidate inert). Ending a shadow that already ended is a no-op."""
        slot = self.manager.slot(name)
        shadow = slot.shadow if slot else None
        if shadow is None or shadow.version != version:
            record = self.ledger.load(name).record(version)
            if record is None or record.state is not VersionState.SHADOW:
                running = shadow.version if shadow else "none"
                raise VersionNotActive(
                    f"model {name!r} version {version!r} is not in shadow (shadow: {running})"
                )
        else:
            self.manager.set_shadow(None, name)
        self.ledger.update(name, version, state=VersionState.STAGED, reason=reason)
        logger.info("model %s version %s no longer in shadow: %s", name, version, reason)

    async def rollback(
        self, name: str, reason: str, previous: ServingModel | None = None
    ) -> ServingModel:
        """Make the rollback target active again; the current version is marked ROLLED_BACK.

        ``previous`` is the still-loaded old version when the watch window kept it, so an
        automatic rollback needs no reload.
        """
        slot = self.manager.slot(name)
        if slot is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        ledger = self.ledger.load(name)
        target = ledger.rollback_target
        if not target:
            raise VersionNotActive(
                f"model {name!r} has no version to roll back to (no earlier activation on record)"
            )
        current = slot.active.version if slot.active else ""
        if previous is None and slot.standby is not None and slot.standby.model.version == target:
            previous = slot.standby.model  # still loaded: inside the rollback window
        if previous is None or previous.version != target:
            found = self.manager.store.find(name, target)
            if found is None:
                raise ModelNotFound(f"rollback target {name!r} version {target!r} is not on disk")
            previous = await self.manager.load(found)
        ledger = self.ledger.load(name)
        if current and current in ledger.records:
            ledger.records[current].state = VersionState.ROLLED_BACK
            ledger.records[current].reason = reason
        ledger.rollback_target = ""
        target_record = ledger.records.get(target)
        if target_record is not None:
            target_record.state = VersionState.ACTIVE
            target_record.activated_at = time.time()
            target_record.reason = f"restored by rollback from {current}: {reason}"
        self.ledger.save(name, ledger)
        self.ledger.point_active(name, target)
        slot.last_rollback = f"from {current} to {target}: {reason}"
        self.manager.install(previous)
        logger.warning("model %s rolled back from %s to %s: %s", name, current, target, reason)
        for listener in self.on_rolled_back:
            listener(name, current, reason)
        return previous

    def prune(self, name: str) -> None:
        """Keep the newest ``keep_versions`` folders; never the active, shadow or rollback
        target."""
        versions = self.manager.store.versions(name)
        if len(versions) <= self.keep_versions:
            return
        ledger = self.ledger.load(name)
        slot = self.manager.slot(name)
        protected = {ledger.rollback_target}
        if slot is not None and slot.active is not None:
            protected.add(slot.active.version)
        if slot is not None and slot.shadow is not None:
            protected.add(slot.shadow.version)
        ordered = sorted(versions, key=lambda v: version_sort_key(v.version))
        removable: list[VersionOnDisk] = [
            v for v in ordered[: -self.keep_versions] if v.version not in protected
        ]
        for old in removable:
            remove_tree(old.path)
            ledger.records.pop(old.version, None)
            logger.info(
                "model %s: removed old version %s (keeping %d)",
                name,
                old.version,
                self.keep_versions,
            )
        if removable:
            self.ledger.save(name, ledger)
            self.manager.refresh_versions(name)
