"""The model root seen as a V2 model repository: readiness, index, load, unload, statistics.

Load means "make a version on disk the serving one" (through the same activation
path as ModelService.ActivateModel, handed in by the gateway); unload means "stop
serving the model" (requests in flight finish on the version they hold). Readiness
follows the model slots and the gateway's shutdown, the same facts grpc.health.v1
and edge.v1 Health report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass

from edge_server.catalogue.serving import ModelSlot, ModelState, ServingCatalogue, ServingModel
from edge_server.errors import InvalidInput, ModelNotFound
from edge_server.inference.statistics import StatisticsBook, VersionStatistics

Activate = Callable[[str, str], Awaitable[ServingModel]]

READY = "READY"
LOADING = "LOADING"
UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True)
class IndexEntry:
    """One model version in the repository index."""

    name: str
    version: str
    state: str  # READY, LOADING or UNAVAILABLE
    reason: str = ""


class ModelRepository:
    def __init__(
        self,
        models: ServingCatalogue,
        statistics: StatisticsBook,
        activate: Activate,
        shutting_down: Callable[[], bool],
        pinned_versions: Mapping[str, str] | None = None,
    ) -> None:
        self._models = models
        self._statistics = statistics
        self._activate = activate
        self._shutting_down = shutting_down
        self._pinned = dict(pinned_versions or {})

    def _slot(self, name: str) -> ModelSlot:
        name = name or self._models.default_model
        slot = self._models.slot(name)
        if slot is None:
            known = ", ".join(s.name for s in self._models.slots()) or "none"
            raise ModelNotFound(f"model {name!r} is not served here (models: {known})")
        return slot

    @property
    def default_model(self) -> str:
        return self._models.default_model

    def served_names(self) -> Container[str]:
        """Names of the models this gateway knows (a live view, no copy per request)."""
        return self._models

    def serving(self, name: str, version: str = "") -> ServingModel:
        """The serving version (NotFound / NotReady / VersionNotActive otherwise)."""
        return self._models.resolve(name, version)

    def versions(self, name: str) -> list[str]:
        """Versions of ``name`` on disk, ascending; NotFound for an unknown model."""
        slot = self._slot(name)
        return [v.version for v in self._models.store.versions(slot.name)]

    def _check_version(self, slot: ModelSlot, version: str) -> None:
        on_disk = [v.version for v in self._models.store.versions(slot.name)]
        if version and version not in on_disk:
            raise ModelNotFound(
                f"model {slot.name!r} has no version {version!r} (on disk: {', '.join(on_disk)})"
            )

    def model_ready(self, name: str, version: str = "") -> bool:
        """Ready = READY, serving ``version`` (when given), and the gateway not draining."""
        slot = self._slot(name)
        self._check_version(slot, version)
        active = slot.active
        return (
            slot.state is ModelState.READY
            and active is not None
            and (not version or active.version == version)
            and not self._shutting_down()
        )

    def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """One entry per version on disk (or per model, when none is)."""
        entries: list[IndexEntry] = []
        names = sorted({*self._models.store.model_names(), *(s.name for s in self._models.slots())})
        for name in names:
            slot = self._models.slot(name) or ModelSlot(name)
            versions = [v.version for v in self._models.store.versions(name)] or [""]
            for version in versions:
                entry = _entry(slot, version)
                if not ready_only or entry.state == READY:
                    entries.append(entry)
        return entries

    async def load(self, name: str, version: str = "") -> ServingModel:
        """Activate a version on disk: ``version`` > the serving one > pinned/ACTIVE/highest."""
        if not name:
            raise InvalidInput("model_name is empty: name the model to load", "model_name")
        if not version:
            slot = self._models.slot(name)
            if slot is not None and slot.active is not None:
                version = slot.active.version
            else:
                found = self._models.store.startup_version(name, self._pinned.get(name))
                if found is None:
                    raise ModelNotFound(f"model {name!r} has no version in the model root")
                version = found.version
        return await self._activate(name, version)

    def unload(self, name: str) -> None:
        """Stop serving ``name``; requests in flight finish on the version they hold."""
        self._models.unload(self._slot(name).name)

    def statistics(
        self, name: str = "", version: str = ""
    ) -> list[tuple[str, str, VersionStatistics]]:
        """Counters per (model, version): those recorded, plus zeros for serving versions."""
        slots = [self._slot(name)] if name else self._models.slots()
        if name:
            self._check_version(slots[0], version)
        found = {
            key: value
            for key, value in self._statistics.snapshot(name, version).items()
            if key[0] in {slot.name for slot in slots}
        }
        for slot in slots:
            if slot.active is not None and (not version or slot.active.version == version):
                found.setdefault((slot.name, slot.active.version), VersionStatistics())
        if name and version:
            found.setdefault((slots[0].name, version), VersionStatistics())
        return [(model, ver, found[(model, ver)]) for model, ver in sorted(found)]


def _entry(slot: ModelSlot, version: str) -> IndexEntry:
    active = slot.active
    if active is not None and active.version == version:
        return IndexEntry(slot.name, version, READY)
    if active is not None:
        return IndexEntry(
            slot.name, version, UNAVAILABLE, f"not the serving version ({active.version} is)"
        )
    if slot.state is ModelState.LOADING:
        return IndexEntry(slot.name, version, LOADING, "the model is loading")
    if slot.state is ModelState.FAILED:
        return IndexEntry(slot.name, version, UNAVAILABLE, slot.last_error or "failed to load")
    return IndexEntry(slot.name, version, UNAVAILABLE, "unloaded")
