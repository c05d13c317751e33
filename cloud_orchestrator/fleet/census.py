"""How many gateways are online, offline or unobserved, how many are drifting, and how many
rollouts are in each state: one aggregate query, so a metrics scrape costs about the same
for 10 or 10,000 gateways.

Presence comes from ``gateways.last_seen``, which every orchestrator process sharing the
database refreshes for its open Subscribe streams (fleet/presence.py): the counts are
fleet-wide, whichever replica is scraped. A gateway seen within ``online_seconds`` is
online; an older pull gateway (no address) is offline; an older push gateway (it has an
address, and the orchestrator only dials it during a rollout) is unobserved, neither
online nor offline.

Drifting counts gateways exactly as ``feedback/drift.py``'s ``count_drifting`` does (the
newest report of the version a gateway runs, or of any version of a model it has not
reported running, says drifting), in SQL rather than over every row in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, case, func, literal, select, union_all

from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Gateway, GatewayDrift, GatewayModel, Rollout

__all__ = ["PRESENCE_STATES", "ROLLOUT_STATES", "FleetCensus", "take_census"]

PRESENCE_STATES = ("online", "offline", "unobserved")
# Every state rollouts/store.py and rollouts/runner.py write: each is reported, 0 when
# no rollout is in it, so an alert on one state has a series to compare from the start.
ROLLOUT_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "HALTED", "CANCELLED")


@dataclass(frozen=True)
class FleetCensus:
    gateways: dict[str, int]  # PRESENCE_STATES -> count
    rollouts: dict[str, int]  # ROLLOUT_STATES (and any other state found) -> count
    drifting: int = 0  # gateways whose active version's inputs drift


def take_census(db: Database, now: float, online_seconds: float) -> FleetCensus:
    """Blocking (one statement): call it from a thread, never on the event loop."""
    presence = case(
        (Gateway.last_seen >= now - online_seconds, literal("online")),
        (Gateway.address == "", literal("offline")),
        else_=literal("unobserved"),
    ).label("key")
    # Grouped in an outer query: grouping by the CASE itself would repeat its bound
    # parameters, which PostgreSQL does not recognise as the selected expression.
    inner = select(presence).subquery()
    gateways = select(literal("gateway").label("kind"), inner.c.key, func.count()).group_by(
        inner.c.key
    )
    rollouts = select(literal("rollout"), Rollout.state, func.count()).group_by(Rollout.state)
    counts: dict[str, dict[str, int]] = {
        "gateway": dict.fromkeys(PRESENCE_STATES, 0),
        "rollout": dict.fromkeys(ROLLOUT_STATES, 0),
        "drift": {"drifting": 0},
    }
    statement = union_all(gateways, rollouts, _drifting())
    with db.session() as session:
        for kind, key, count in session.execute(statement):
            counts[str(kind)][str(key)] = int(count)
    return FleetCensus(counts["gateway"], counts["rollout"], counts["drift"]["drifting"])


def _drifting() -> Select[tuple[str, str, int]]:
    running = func.coalesce(GatewayModel.active_version, "")
    return (
        select(
            literal("drift"),
            literal("drifting"),
            func.count(func.distinct(GatewayDrift.gateway_id)),
        )
        .select_from(GatewayDrift)
        .outerjoin(
            GatewayModel,
            and_(
                GatewayModel.gateway_id == GatewayDrift.gateway_id,
                GatewayModel.model_name == GatewayDrift.model_name,
            ),
        )
        .where(
            GatewayDrift.drifting.is_(True),
            (running == "") | (running == GatewayDrift.model_version),
        )
    )
