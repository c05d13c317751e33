"""Which model versions are loaded and serving, and their state.

Hot swap by reference (CONTRIBUTING.md): a ``ServingModel`` is immutable; activating a
version builds a new one beside the old and replaces a single reference, so a request
keeps the version it resolved at admission.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edge_contracts.manifest import Manifest, load_manifest
from edge_server.catalogue.on_disk import DiskCatalogue, VersionOnDisk
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import (
    EdgeError,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    VersionNotActive,
)
from edge_server.inference.preprocessing import ImagePlan, plan_image_input

logger = logging.getLogger(__name__)


class Session(Protocol):
    """What the domain needs from a runtime session (edge_server.runtime implements it)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    providers: tuple[str, ...]  # execution providers in use, in preference order

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


SessionFactory = Callable[[Path], Session]


class ModelState(enum.Enum):
    LOADING = "LOADING"
    READY = "READY"
    FAILED = "FAILED"
    UNLOADED = "UNLOADED"


@dataclass(frozen=True)
class ServingModel:
    """One loaded, warmed version. Never mutated after construction."""

    name: str
    version: str
    session: Session
    manifest: Manifest
    image_plan: ImagePlan | None
    image_plan_error: str
    loaded_at: float
    load_seconds: float

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.session.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.session.outputs


@dataclass(frozen=True)
class Standby:
    """The version the last activation replaced, kept loaded until ``until`` (wall clock)
    so a rollback inside the window is a reference swap, not a reload."""

    model: ServingModel
    until: float


@dataclass
class ModelSlot:
    """Mutable status of one model name; ``active`` is swapped as a whole."""

    name: str
    state: ModelState = ModelState.UNLOADED
    active: ServingModel | None = None
    last_error: str = ""
    versions_on_disk: tuple[str, ...] = ()
    load_failures: int = 0
    shadow: ServingModel | None = None
    last_rollback: str = ""
    standby: Standby | None = None


def _warm_up_feeds(inputs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    feeds = {}
    for spec in inputs:
        shape = tuple(1 if d == -1 else d for d in spec.shape)
        feeds[spec.name] = np.zeros(shape, dtype=np.dtype(spec.dtype))
    return feeds


def warm_up(session: Session) -> None:
    """One inference on zeros: first-request latency would otherwise pay ORT's lazy setup."""
    if all(d != 0 for spec in session.inputs for d in spec.shape) and all(
        spec.dtype != "object" for spec in session.inputs
    ):
        session.run(_warm_up_feeds(session.inputs))


def build_serving_model(
    found: VersionOnDisk, factory: SessionFactory, warm: bool = True
) -> ServingModel:
    """Blocking: parse the manifest, load the session, plan image input, warm up."""
    started = time.perf_counter()
    manifest = load_manifest(found.path)
    session = factory(found.model_path)
    plan: ImagePlan | None = None
    plan_error = ""
    if manifest.preprocessing is None:
        plan_error = "its manifest has no preprocessing section, so it takes tensors only"
    elif len(session.inputs) != 1:
        plan_error = f"it has {len(session.inputs)} inputs; image input needs exactly one"
    else:
        plan = plan_image_input(manifest.preprocessing, session.inputs[0])
    if warm:
        warm_up(session)
    return ServingModel(
        name=found.name,
        version=found.version,
        session=session,
        manifest=manifest,
        image_plan=plan,
        image_plan_error=plan_error,
        loaded_at=time.time(),
        load_seconds=time.perf_counter() - started,
    )


StateListener = Callable[[ModelSlot], None]


class ServingCatalogue:
    """Owns every model slot; loads versions off the event loop."""

    def __init__(
        self,
        store: DiskCatalogue,
        factory: SessionFactory,
        pinned_versions: dict[str, str] | None = None,
        default_model: str = "",
    ) -> None:
        self.store = store
        self._factory = factory
        self._pinned = dict(pinned_versions or {})
        self._default_model = default_model
        self._slots: dict[str, ModelSlot] = {}
        self._listeners: list[StateListener] = []

    # -- observation -------------------------------------------------------------
    def add_listener(self, listener: StateListener) -> None:
        """Called on every state change (health and metrics follow the models)."""
        self._listeners.append(listener)

    def _notify(self, slot: ModelSlot) -> None:
        for listener in self._listeners:
            listener(slot)

    def slots(self) -> list[ModelSlot]:
        return [self._slots[name] for name in sorted(self._slots)]

    def slot(self, name: str) -> ModelSlot | None:
        return self._slots.get(name)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is a model this gateway knows (cheap: no sorting, no copies)."""
        return name in self._slots

    @property
    def default_model(self) -> str:
        if self._default_model:
            return self._default_model
        names = sorted(self._slots)
        return names[0] if names else ""

    def any_ready(self) -> bool:
        return any(slot.state is ModelState.READY for slot in self._slots.values())

    # -- loading -----------------------------------------------------------------
    def discover(self) -> None:
        """Create a slot per model folder (state LOADING) without loading anything."""
        for name in self.store.model_names():
            slot = self._slots.setdefault(name, ModelSlot(name))
            slot.versions_on_disk = tuple(v.version for v in self.store.versions(name))
            slot.state = ModelState.LOADING
            self._notify(slot)
        if self._default_model and self._default_model not in self._slots:
            logger.warning("default model %r is not in %s", self._default_model, self.store.root)

    async def load_all(self) -> None:
        """Load the start-up version of every discovered model, one at a time.

        Sequential on purpose: on a 2-4 core board, parallel loads compete with
        requests already being served by the first ready model.
        """
        for name in list(self._slots):
            found = self.store.startup_version(name, self._pinned.get(name))
            if found is None:
                continue
            try:
                await self.activate(found)
            except Exception:  # recorded on the slot; the other models still load
                continue

    async def load(self, found: VersionOnDisk, warm: bool = True) -> ServingModel:
        """Load and warm ``found`` beside whatever serves now; nothing is swapped.

        A failure is recorded on the slot (last_error, metrics) and re-raised.
        """
        slot = self._slots.setdefault(found.name, ModelSlot(found.name))
        if slot.active is None:
            slot.state = ModelState.LOADING
            self._notify(slot)
        try:
            return await self.load_candidate(found, warm)
        except EdgeError as exc:
            self._record_failure(slot, f"version {found.version}: {exc}")
            raise

    async def load_candidate(self, found: VersionOnDisk, warm: bool = True) -> ServingModel:
        """Load a version without touching any slot: a pushed version under verification
        is not served yet, so its failure is a rejection, not the model's state."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, build_serving_model, found, self._factory, warm)
        except EdgeError:
            raise
        except Exception as exc:  # a broken file must never take the gateway down
            logger.exception("model %s version %s failed to load", found.name, found.version)
            raise ModelLoadError(
                f"model {found.name!r} version {found.version!r} failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def install(self, model: ServingModel) -> ServingModel | None:
        """Make ``model`` the active version: one reference swap. Returns the old one.

        Requests already admitted keep the version they resolved; the old session is
        released when the last of them finishes (reference counting).
        """
        slot = self._slots.setdefault(model.name, ModelSlot(model.name))
        previous = slot.active
        slot.active = model
        slot.state = ModelState.READY
        slot.last_error = ""
        if slot.shadow is not None and slot.shadow.version == model.version:
            slot.shadow = None
        if slot.standby is not None and slot.standby.model.version == model.version:
            slot.standby = None  # rolled back to it: it serves again
        self.refresh_versions(model.name)
        logger.info(
            "model %s version %s active (loaded in %.3f s; inputs: %s)%s",
            model.name,
            model.version,
            model.load_seconds,
            "; ".join(spec.describe() for spec in model.inputs),
            f"; replaced version {previous.version}" if previous else "",
        )
        self._notify(slot)
        return previous

    async def activate(self, found: VersionOnDisk) -> ServingModel:
        """Load ``found`` beside the current version, then swap the reference."""
        model = await self.load(found)
        self.install(model)
        return model

    def set_shadow(self, model: ServingModel | None, name: str) -> None:
        """Run ``model`` on sampled live traffic beside the active version (None = stop)."""
        slot = self._slots.setdefault(name, ModelSlot(name))
        slot.shadow = model
        self._notify(slot)

    def refresh_versions(self, name: str) -> None:
        slot = self._slots.get(name)
        if slot is not None:
            slot.versions_on_disk = tuple(v.version for v in self.store.versions(name))

    def _record_failure(self, slot: ModelSlot, message: str) -> None:
        slot.last_error = message
        slot.load_failures += 1
        if slot.active is None:
            slot.state = ModelState.FAILED
        logger.error("model %s: %s", slot.name, message)
        self._notify(slot)

    def unload(self, name: str) -> None:
        """Stop serving ``name``; in-flight requests finish on the version they hold."""
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(f"model {name!r} is not served here")
        slot.active = None
        slot.standby = None
        slot.state = ModelState.UNLOADED
        logger.info("model %s unloaded", name)
        self._notify(slot)

    # -- request path ------------------------------------------------------------
    def resolve(self, name: str, version: str = "") -> ServingModel:
        """The version a request will run on; raises NotFound/NotReady with a reason."""
        name = name or self.default_model
        if not name:
            raise ModelNotFound(f"no models are served: the model root {self.store.root} is empty")
        slot = self._slots.get(name)
        if slot is None:
            known = ", ".join(sorted(self._slots)) or "none"
            raise ModelNotFound(f"model {name!r} is not served here (models: {known})")
        active = slot.active
        if active is None:
            if slot.state is ModelState.UNLOADED:
                raise ModelNotReady(f"model {name!r} is unloaded; load it to serve it again")
            if slot.state is ModelState.FAILED:
                raise ModelNotReady(f"model {name!r} failed to load: {slot.last_error}")
            raise ModelNotReady(f"model {name!r} is still loading; retry shortly")
        if version and version != active.version:
            if version in slot.versions_on_disk:
                raise VersionNotActive(
                    f"model {name!r} version {version!r} is on disk but not active "
                    f"(active: {active.version}); activate it first"
                )
            raise ModelNotFound(
                f"model {name!r} has no version {version!r} "
                f"(on disk: {', '.join(slot.versions_on_disk)})"
            )
        return active
