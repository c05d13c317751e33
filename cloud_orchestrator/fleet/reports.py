"""What gateways report (Subscribe's models, ReportStatus), merged per group commit and
written at its end (storage/merged.py).

Written one by one, each report looked its gateway row and its model rows up (a round
trip each inside the group's transaction), and a model row another replica inserted a
moment earlier failed the whole group (duplicate key), which then ran write by write.
Here a group's reports become three statements, rows in key order on every replica:
``UPDATE gateways SET last_seen ... WHERE id IN (...) RETURNING id`` (an id it does not
return is a gateway that is unknown: NotFound for the writes that named it), then one
``INSERT INTO gateway_models ... ON CONFLICT DO UPDATE`` (the last report of a group
wins, as it would have one after the other), then one ``INSERT INTO gateway_events``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from typing import cast as type_cast

from sqlalchemy import Table, any_, bindparam, cast, insert, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import NotFound
from cloud_orchestrator.storage.merged import merged
from cloud_orchestrator.storage.models import Gateway, GatewayEvent, GatewayModel
from cloud_orchestrator.storage.row_arrays import array_params, rows_from_arrays, upsert

if TYPE_CHECKING:  # fleet/store.py imports this module
    from cloud_orchestrator.fleet.store import ReportedEvent, ReportedModel

__all__ = ["record_events", "record_models", "record_seen"]

_GATEWAYS = type_cast(Table, Gateway.__table__)
_MODELS = type_cast(Table, GatewayModel.__table__)
_MODEL_COLUMNS = (
    "gateway_id",
    "model_name",
    "active_version",
    "state",
    "bundle_sha256",
    "updated_at",
)
_EVENTS = type_cast(Table, GatewayEvent.__table__)
_EVENT_COLUMNS = (
    "gateway_id",
    "model_name",
    "model_version",
    "kind",
    "reason",
    "occurred_at",
    "received_at",
)
ID_CHUNK = 1000  # ids or rows per statement: far below either database's parameter limit
_OUTSIDE = "reports are written in a group commit's session (storage/merged.py run_merged)"


def record_seen(session: Session, gateway_id: str) -> None:
    """The gateway reported now; NotFound at the group's end when it is unknown."""
    pending = merged(session, "gateway_last_seen", _MergedSeen)
    if pending is None:
        raise RuntimeError(_OUTSIDE)
    pending.ids.add(gateway_id)


def record_models(session: Session, gateway_id: str, models: Sequence[ReportedModel]) -> None:
    """What the gateway runs now (replacing what it said before for these models)."""
    if not models:
        return
    pending = merged(session, "gateway_models", _MergedModels)
    if pending is None:
        raise RuntimeError(_OUTSIDE)
    rows = pending.rows
    now = time.time()
    for model in models:
        rows[(gateway_id, model.model_name)] = (
            model.active_version,
            model.state,
            model.bundle_sha256,
            now,
        )


def record_events(
    session: Session, gateway_id: str, events: Sequence[ReportedEvent], now: float
) -> None:
    """The gateway's status events, stored with the group's others at its end (after its
    last-seen update, which refuses an unknown gateway first)."""
    if not events:
        return
    pending = merged(session, "gateway_events", _MergedEvents)
    if pending is None:
        raise RuntimeError(_OUTSIDE)
    pending.rows.extend(
        (
            gateway_id,
            item.model_name,
            item.model_version,
            item.kind,
            item.reason[:2000],
            item.occurred_at or now,
            now,
        )
        for item in events
    )


class _MergedSeen:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def apply(self, session: Session) -> None:
        ordered = sorted(self.ids)
        now = time.time()
        found: set[str] = set()
        postgres = session.get_bind().dialect.name == "postgresql"
        # PostgreSQL: all ids as one array (one statement shape: storage/row_arrays.py).
        size = len(ordered) if postgres else ID_CHUNK
        for start in range(0, len(ordered), size):
            chunk = ordered[start : start + size]
            which = (
                _GATEWAYS.c.id == any_(cast(bindparam("ids"), ARRAY(_GATEWAYS.c.id.type)))
                if postgres
                else _GATEWAYS.c.id.in_(chunk)
            )
            statement = (
                update(_GATEWAYS).where(which).values(last_seen=now).returning(_GATEWAYS.c.id)
            )
            params = {"ids": chunk} if postgres else {}
            found.update(str(i) for i in session.execute(statement, params).scalars())
        missing = [i for i in ordered if i not in found]
        if missing:
            raise NotFound(f"gateway {missing[0]!r} is unknown; Subscribe first")


class _MergedModels:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[str, str, str, float]] = {}

    def apply(self, session: Session) -> None:
        if not self.rows:
            return
        rows = [
            (gateway_id, model_name, version, state, sha256, at)
            for (gateway_id, model_name), (version, state, sha256, at) in sorted(self.rows.items())
        ]
        if session.get_bind().dialect.name == "postgresql":  # one statement, any size
            statement = upsert(
                _MODELS,
                _MODEL_COLUMNS,
                ("gateway_id", "model_name"),
                tuple(f"{c} = excluded.{c}" for c in _MODEL_COLUMNS[2:]),
            )
            session.execute(statement, array_params(_MODEL_COLUMNS, rows))
            return
        for start in range(0, len(rows), ID_CHUNK):
            chunk = [
                dict(zip(_MODEL_COLUMNS, row, strict=True))
                for row in rows[start : start + ID_CHUNK]
            ]
            session.execute(_upsert_models(sqlite_insert(_MODELS).values(chunk)))


def _upsert_models(statement: Any) -> Any:
    """``statement`` (a SQLite insert of gateway models) as an upsert."""
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_MODELS.c.gateway_id, _MODELS.c.model_name],
        set_={
            "active_version": excluded.active_version,
            "state": excluded.state,
            "bundle_sha256": excluded.bundle_sha256,
            "updated_at": excluded.updated_at,
        },
    )


class _MergedEvents:
    """Plain inserts, one statement per group (ORM objects cost a flush of their own and
    a statement text per group size)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str, float, float]] = []

    def apply(self, session: Session) -> None:
        if not self.rows:
            return
        if session.get_bind().dialect.name == "postgresql":  # one statement shape, any size
            source = rows_from_arrays(_EVENTS, _EVENT_COLUMNS)
            statement = insert(_EVENTS).from_select(_EVENT_COLUMNS, source)  # cached
            session.execute(statement, array_params(_EVENT_COLUMNS, self.rows))
            return
        for start in range(0, len(self.rows), ID_CHUNK):
            chunk = self.rows[start : start + ID_CHUNK]
            values = [dict(zip(_EVENT_COLUMNS, row, strict=True)) for row in chunk]
            session.execute(sqlite_insert(_EVENTS).values(values))
