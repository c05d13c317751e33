"""Desired state for pull-mode gateways, computed in memory from one snapshot of the
assignments, the rollout pins, gateway labels and the registry's versions.

One snapshot per fleet generation serves every Subscribe stream of an orchestrator
(cloud_orchestrator/fleet/changes.py): after an assign, N gateways cost one read of these
tables and N selector matches, not N sets of queries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, select

from cloud_orchestrator.errors import NotFound
from cloud_orchestrator.fleet.selector import Selector
from cloud_orchestrator.registry.store import Registry, VersionInfo
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Assignment, DesiredPin, Gateway

__all__ = ["AssignmentRule", "DesiredSnapshot", "DesiredVersion", "load_snapshot"]


@dataclass(frozen=True)
class DesiredVersion:
    model_name: str
    version: str
    sha256: str
    size_bytes: int
    mode: str
    rollout_id: str = ""
    window: str = ""  # HH:MM-HH:MM in the gateway's local time: activate only then


@dataclass(frozen=True)
class AssignmentRule:
    model_name: str
    selector: Selector
    version: str
    mode: str


@dataclass(frozen=True)
class DesiredSnapshot:
    """What decides every gateway's desired state, as read at one moment."""

    assignments: tuple[AssignmentRule, ...]
    # gateway -> model -> (version, rollout, mode, window)
    pins: Mapping[str, Mapping[str, tuple[str, str, str, str]]]
    labels: Mapping[str, Mapping[str, str]]  # gateway -> labels (as stored)
    latest: Mapping[str, VersionInfo]
    versions: Mapping[tuple[str, str], VersionInfo | None] = field(default_factory=dict)

    def desired(self, gateway_id: str, labels: Mapping[str, Any]) -> list[DesiredVersion]:
        """Rollout pins first, then the newest matching assignment per model."""
        chosen: dict[str, tuple[str, str, str, str]] = {}
        for assignment in self.assignments:
            if assignment.selector.matches(gateway_id, labels):
                chosen[assignment.model_name] = (assignment.version, assignment.mode, "", "")
        for model_name, (version, rollout_id, mode, window) in self.pins.get(
            gateway_id, {}
        ).items():
            chosen[model_name] = (version, mode, rollout_id, window)
        desired = []
        for model_name, (version, mode, rollout_id, window) in sorted(chosen.items()):
            if version == "latest":
                info = self.latest.get(model_name)
                if info is None:
                    continue  # nothing published yet: nothing to ask for
            else:
                found = self.versions.get((model_name, version))
                if found is None:
                    # A rollback target the gateway had before the registry knew the model:
                    # it can only be activated from the gateway's own store.
                    desired.append(
                        DesiredVersion(model_name, version, "", 0, mode, rollout_id, window)
                    )
                    continue
                info = found
            desired.append(
                DesiredVersion(
                    model_name, info.version, info.sha256, info.size_bytes, mode, rollout_id, window
                )
            )
        return desired


def load_snapshot(db: Database, registry: Registry, gateway_id: str = "") -> DesiredSnapshot:
    """Read the snapshot (blocking); with ``gateway_id``, only that gateway's pins and labels."""
    with db.session() as session:
        rows = session.execute(
            select(
                Assignment.model_name, Assignment.selector, Assignment.version, Assignment.mode
            ).order_by(Assignment.id)
        ).all()
        pin_query = select(
            DesiredPin.gateway_id,
            DesiredPin.model_name,
            DesiredPin.version,
            DesiredPin.rollout_id,
            DesiredPin.mode,
            DesiredPin.window,
        )
        # As text, decoded once per distinct label set below: a fleet of 10,000 has few
        # distinct sets, and decoding each row's JSON was a visible part of an assign.
        label_query = select(Gateway.id, cast(Gateway.labels, Text))
        if gateway_id:
            pin_query = pin_query.where(DesiredPin.gateway_id == gateway_id)
            label_query = label_query.where(Gateway.id == gateway_id)
        pin_rows = session.execute(pin_query).all()
        label_rows = session.execute(label_query).all()
    assignments = tuple(
        AssignmentRule(name, Selector.parse(selector), version, mode)
        for name, selector, version, mode in rows
    )
    pins: dict[str, dict[str, tuple[str, str, str, str]]] = {}
    for gateway, model_name, version, rollout_id, mode, window in pin_rows:
        pins.setdefault(gateway, {})[model_name] = (version, rollout_id, mode, window)
    labels = _decode_labels(label_rows)
    named = {(a.model_name, a.version) for a in assignments if a.version != "latest"}
    named |= {(model, pin[0]) for by_model in pins.values() for model, pin in by_model.items()}
    uses_latest = any(a.version == "latest" for a in assignments) or any(
        pin[0] == "latest" for by_model in pins.values() for pin in by_model.values()
    )
    versions: dict[tuple[str, str], VersionInfo | None] = {}
    for model_name, version in sorted(named):
        try:
            versions[(model_name, version)] = registry.version(model_name, version)
        except NotFound:
            versions[(model_name, version)] = None
    latest = registry.latest_versions() if uses_latest else {}
    return DesiredSnapshot(assignments, pins, labels, latest, versions)


def _decode_labels(rows: Iterable[Any]) -> dict[str, Mapping[str, str]]:
    """gateway -> labels from (id, JSON text) rows; equal texts share one (read-only) dict."""
    decoded: dict[str | None, Mapping[str, str]] = {}
    labels: dict[str, Mapping[str, str]] = {}
    for gateway_id, text in rows:
        found = decoded.get(text)
        if found is None:
            value = json.loads(text) if text else {}
            found = decoded[text] = {str(k): str(v) for k, v in (value or {}).items()}
        labels[gateway_id] = found
    return labels
