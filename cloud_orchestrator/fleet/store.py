"""The fleet: registered gateways, label selectors, what each gateway runs and what it
should run (desired state for pull mode).

Selectors are in fleet/selector.py, desired state in fleet/desired.py. Every change here
that can alter some gateway's desired state bumps the fleet generation in the same
transaction and tells this process's hub after the commit (fleet/changes.py).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import InvalidRequest, NotFound
from cloud_orchestrator.fleet.changes import FleetChanges
from cloud_orchestrator.fleet.desired import DesiredVersion, load_snapshot
from cloud_orchestrator.fleet.reports import record_events, record_models, record_seen
from cloud_orchestrator.fleet.selector import Selector, parse_labels
from cloud_orchestrator.registry.store import Registry
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.merged import run_merged
from cloud_orchestrator.storage.models import (
    Assignment,
    DesiredPin,
    Gateway,
    GatewayEvent,
    GatewayModel,
)

__all__ = [
    "DesiredVersion",
    "Fleet",
    "GatewayInfo",
    "ReportedEvent",
    "ReportedModel",
    "Selector",
    "parse_labels",
]

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MODES = ("ACTIVATE", "STAGE", "SHADOW")


@dataclass(frozen=True)
class ReportedModel:
    model_name: str
    active_version: str
    state: str
    bundle_sha256: str = ""


@dataclass(frozen=True)
class ReportedEvent:
    model_name: str
    model_version: str
    kind: str  # ACTIVATED REJECTED ROLLED_BACK STAGED FAILED
    reason: str
    occurred_at: float


@dataclass(frozen=True)
class GatewayInfo:
    id: str
    address: str
    labels: dict[str, str]
    last_seen: float
    registered_at: float
    gateway_version: str = ""
    token: str = field(default="", repr=False)
    ca_pem: str = field(default="", repr=False)
    running: dict[str, ReportedModel] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "push" if self.address else "pull"


def _gateway_info(row: Gateway, running: Sequence[GatewayModel] = ()) -> GatewayInfo:
    return GatewayInfo(
        id=row.id,
        address=row.address,
        labels={str(k): str(v) for k, v in (row.labels or {}).items()},
        last_seen=row.last_seen,
        registered_at=row.registered_at,
        gateway_version=row.gateway_version,
        token=row.token,
        ca_pem=row.ca_pem,
        running={
            r.model_name: ReportedModel(r.model_name, r.active_version, r.state, r.bundle_sha256)
            for r in running
        },
    )


T = TypeVar("T")


def _in_session(session: Session, model: type[T], key: Any) -> T | None:
    """``session.get`` that also finds rows added earlier in this session but not yet
    flushed: a group commit's session runs without autoflush (storage/group_commit.py),
    and one group may hold two writes for the same gateway."""
    added: dict[tuple[type, Any], Any] = session.info.setdefault("added", {})
    found = added.get((model, key))
    return found if found is not None else session.get(model, key)


def _keep(session: Session, model: type[T], key: Any, row: T) -> None:
    session.add(row)
    session.info.setdefault("added", {})[(model, key)] = row


TOUCH_CHUNK = 1000  # ids per UPDATE: far below either database's bound-parameter limit


class Fleet:
    def __init__(
        self, db: Database, registry: Registry, changes: FleetChanges | None = None
    ) -> None:
        self.db = db
        self.registry = registry
        self.changes = changes if changes is not None else FleetChanges(db)

    @contextmanager
    def _changing(self) -> Iterator[Session]:
        """A transaction that may alter desired state: bumped inside, announced after."""
        with self.db.session() as session:
            yield session
            self.changes.bump(session)
        self.changes.committed()

    # -- gateways ---------------------------------------------------------------------------

    def register(
        self,
        gateway_id: str,
        address: str = "",
        labels: Mapping[str, str] | None = None,
        token: str = "",
        ca_pem: str = "",
    ) -> GatewayInfo:
        """Add a gateway or change its address, labels and credentials."""
        if not _ID_RE.fullmatch(gateway_id):
            raise InvalidRequest(
                f"gateway id {gateway_id!r} must be 1-128 letters, digits, '.', '_', ':' or '-'"
            )
        if address and not re.fullmatch(r"[^\s:]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5}", address):
            raise InvalidRequest(f"gateway address {address!r} is not HOST:PORT")
        now = time.time()
        with self._changing() as session:
            row = session.get(Gateway, gateway_id)
            if row is None:
                row = Gateway(id=gateway_id, registered_at=now, last_seen=0.0)
                session.add(row)
            row.address = address
            row.labels = dict(labels or {})
            row.token = token
            row.ca_pem = ca_pem
        return self.gateway(gateway_id)

    def remove(self, gateway_id: str) -> None:
        with self._changing() as session:
            row = session.get(Gateway, gateway_id)
            if row is None:
                raise NotFound(f"no gateway {gateway_id!r} is registered")
            session.execute(delete(GatewayModel).where(GatewayModel.gateway_id == gateway_id))
            session.execute(delete(DesiredPin).where(DesiredPin.gateway_id == gateway_id))
            session.delete(row)

    def gateway(self, gateway_id: str) -> GatewayInfo:
        with self.db.session() as session:
            row = session.get(Gateway, gateway_id)
            if row is None:
                raise NotFound(f"no gateway {gateway_id!r} is registered")
            running = session.scalars(
                select(GatewayModel).where(GatewayModel.gateway_id == gateway_id)
            ).all()
            return _gateway_info(row, running)

    def gateways(self, selector: Selector | None = None) -> list[GatewayInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(Gateway).order_by(Gateway.id)).all()
            running: dict[str, list[GatewayModel]] = {}
            for model in session.scalars(select(GatewayModel)).all():
                running.setdefault(model.gateway_id, []).append(model)
            infos = [_gateway_info(row, running.get(row.id, [])) for row in rows]
        if selector is None:
            return infos
        return [g for g in infos if selector.matches(g.id, g.labels)]

    # -- what gateways report ---------------------------------------------------------------

    def hello(
        self, gateway_id: str, labels: Mapping[str, str], gateway_version: str
    ) -> GatewayInfo:
        """A pull-mode gateway connected: register it when new, refresh labels and last seen."""
        self.connect(gateway_id, labels, gateway_version)
        return self.gateway(gateway_id)

    def connect(
        self,
        gateway_id: str,
        labels: Mapping[str, str],
        gateway_version: str,
        models: Sequence[ReportedModel] = (),
    ) -> dict[str, str]:
        """``hello`` and ``report`` of what it runs, in one transaction (a fleet's
        reconnect burst); returns the labels now stored."""
        write = functools.partial(
            self.connect_in,
            gateway_id=gateway_id,
            labels=labels,
            gateway_version=gateway_version,
            models=models,
        )
        with self.db.session() as session:
            labels_now: dict[str, str] = run_merged(session, write)
            return labels_now

    def connect_in(
        self,
        session: Session,
        gateway_id: str,
        labels: Mapping[str, str],
        gateway_version: str,
        models: Sequence[ReportedModel] = (),
    ) -> dict[str, str]:
        """``connect`` in ``session``'s transaction (a group commit's, in Subscribe)."""
        if not _ID_RE.fullmatch(gateway_id):
            raise InvalidRequest(f"gateway id {gateway_id!r} is not valid")
        now = time.time()
        # No generation bump, even for new labels: a gateway's labels decide only its own
        # desired state, which its own stream computes next from the labels it sent (and
        # a later snapshot holds the stored ones). Bumping here made a fleet's first
        # subscribe burst wake every stream and reread the snapshot once per gateway.
        row = _in_session(session, Gateway, gateway_id)
        if row is None:
            row = Gateway(id=gateway_id, registered_at=now, address="", token="", ca_pem="")
            _keep(session, Gateway, gateway_id, row)
        if labels:
            row.labels = dict(labels)
        row.gateway_version = gateway_version
        row.last_seen = now
        record_models(session, gateway_id, models)
        return {str(k): str(v) for k, v in (row.labels or {}).items()}

    def touch(self, gateway_id: str) -> None:
        self.touch_many({gateway_id: time.time()})

    def touch_many(self, seen: Mapping[str, float]) -> None:
        """Last-seen times of many gateways in one transaction (fleet/presence.py), to the
        second: one ``UPDATE ... WHERE id IN (...)`` per second seen and per 1,000 ids.
        One bound row per gateway (an executemany) spent most of a 10,000-gateway
        orchestrator's CPU building parameters, during an assign too."""
        if not seen:
            return
        with self.db.session() as session:
            self.touch_many_in(session, seen)

    def touch_many_in(self, session: Session, seen: Mapping[str, float]) -> None:
        """``touch_many`` in ``session``'s transaction (the presence flush's group commit)."""
        by_second: dict[int, list[str]] = {}
        for gateway_id, at in seen.items():
            by_second.setdefault(int(at), []).append(gateway_id)
        table = cast(Table, Gateway.__table__)
        connection = session.connection()
        for second, ids in sorted(by_second.items()):
            for start in range(0, len(ids), TOUCH_CHUNK):
                chunk = ids[start : start + TOUCH_CHUNK]
                connection.execute(
                    update(table).where(table.c.id.in_(chunk)).values(last_seen=second)
                )

    def report(
        self,
        gateway_id: str,
        models: Sequence[ReportedModel],
        events: Sequence[ReportedEvent] = (),
    ) -> int:
        """Store what a gateway runs and what happened to it; returns events stored."""
        write = functools.partial(
            self.report_in, gateway_id=gateway_id, models=models, events=events
        )
        with self.db.session() as session:
            stored: int = run_merged(session, write)
            return stored

    def report_in(
        self,
        session: Session,
        gateway_id: str,
        models: Sequence[ReportedModel],
        events: Sequence[ReportedEvent] = (),
    ) -> int:
        """``report`` in a group commit's transaction (ReportStatus): the gateway's row,
        models and events with the group's others at its end (fleet/reports.py)."""
        now = time.time()
        record_seen(session, gateway_id)  # NotFound at the end when it is unknown
        record_models(session, gateway_id, models)
        record_events(session, gateway_id, events, now)
        return len(events)

    def events(
        self, gateway_id: str, model_name: str = "", since: float = 0.0
    ) -> list[ReportedEvent]:
        with self.db.session() as session:
            query = select(GatewayEvent).where(
                GatewayEvent.gateway_id == gateway_id, GatewayEvent.received_at >= since
            )
            if model_name:
                query = query.where(GatewayEvent.model_name == model_name)
            rows = session.scalars(query.order_by(GatewayEvent.id)).all()
            return [
                ReportedEvent(r.model_name, r.model_version, r.kind, r.reason, r.occurred_at)
                for r in rows
            ]

    # -- desired state ----------------------------------------------------------------------

    def assign(self, model_name: str, selector: str, version: str, mode: str = "ACTIVATE") -> None:
        """Gateways matching ``selector`` should run ``version`` (or ``latest``)."""
        parsed = Selector.parse(selector)
        if mode not in MODES:
            raise InvalidRequest(f"mode must be one of {', '.join(MODES)}")
        if version != "latest":  # `latest` may name a model not published yet
            self.registry.version(model_name, version)
        with self._changing() as session:
            row = session.scalars(
                select(Assignment).where(
                    Assignment.model_name == model_name, Assignment.selector == parsed.text
                )
            ).first()
            if row is None:
                row = Assignment(
                    model_name=model_name, selector=parsed.text, created_at=time.time()
                )
                session.add(row)
            row.version = version
            row.mode = mode

    def unassign(self, model_name: str, selector: str) -> None:
        parsed = Selector.parse(selector)
        with self._changing() as session:
            session.execute(
                delete(Assignment).where(
                    Assignment.model_name == model_name, Assignment.selector == parsed.text
                )
            )

    def pin(
        self,
        gateway_id: str,
        model_name: str,
        version: str,
        rollout_id: str,
        mode: str = "ACTIVATE",
        window: str = "",
    ) -> None:
        with self._changing() as session:
            row = session.get(DesiredPin, (gateway_id, model_name))
            if row is None:
                row = DesiredPin(gateway_id=gateway_id, model_name=model_name)
                session.add(row)
            row.version = version
            row.rollout_id = rollout_id
            row.mode = mode
            row.window = window
            row.updated_at = time.time()

    def unpin(self, gateway_id: str, model_name: str) -> None:
        with self._changing() as session:
            session.execute(
                delete(DesiredPin).where(
                    DesiredPin.gateway_id == gateway_id, DesiredPin.model_name == model_name
                )
            )

    def desired(self, gateway: GatewayInfo) -> list[DesiredVersion]:
        """Rollout pins first, then the newest matching assignment per model."""
        snapshot = load_snapshot(self.db, self.registry, gateway.id)
        return snapshot.desired(gateway.id, gateway.labels)
