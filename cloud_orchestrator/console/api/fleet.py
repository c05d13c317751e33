"""GET /api/v1/gateways (one page, filtered, with counts), GET /api/v1/gateways/{id},
GET /api/v1/models and /api/v1/models/{name}."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cloud_orchestrator.console.api.common import blocking, orchestrator, query_int, reply
from cloud_orchestrator.console.fleet_view import FleetQuery, fleet_page
from cloud_orchestrator.console.keys import OPTIONS
from cloud_orchestrator.console.models_view import model_detail, models_list

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/v1/gateways")
async def gateways(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    query = FleetQuery(
        selector=request.query.get("selector", "all"),
        status=request.query.get("status", "any"),
        drift_only=request.query.get("drift", "") in ("1", "true", "yes"),
        page=query_int(request, "page", 1),
        per_page=query_int(request, "per_page", 50),
    )
    online = request.app[OPTIONS].online_seconds
    return reply(await blocking(fleet_page, orch.db, orch.registry, query, online))


def _gateway(orch: Any, gateway_id: str) -> dict[str, Any]:
    info = orch.fleet.gateway(gateway_id)  # NotFound -> 404
    desired = {d.model_name: d.version for d in orch.fleet.desired(info)}
    events = orch.fleet.events(gateway_id)[-50:]
    return {
        "id": info.id,
        "mode": info.mode,
        "address": info.address,
        "labels": info.labels,
        "last_seen": info.last_seen,
        "registered_at": info.registered_at,
        "gateway_version": info.gateway_version,
        "models": [
            {
                "model": name,
                "desired": desired.get(name, ""),
                "running": info.running[name].active_version if name in info.running else "",
                "state": info.running[name].state if name in info.running else "",
            }
            for name in sorted(set(desired) | set(info.running))
        ],
        "events": [e.__dict__ for e in events],
    }


@routes.get("/api/v1/gateways/{gateway_id}")
async def gateway(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    return reply(await blocking(_gateway, orch, request.match_info["gateway_id"]))


@routes.get("/api/v1/models")
async def models(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    return reply(await blocking(models_list, orch.db, orch.registry))


@routes.get("/api/v1/models/{name}")
async def model(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    return reply(await blocking(model_detail, orch.db, orch.registry, request.match_info["name"]))
