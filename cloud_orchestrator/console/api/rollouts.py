"""Rollouts: GET /api/v1/rollouts, GET /api/v1/rollouts/{id} (waves, targets, events;
?target_state=FAILED&targets_limit=500),
POST /api/v1/rollouts (deploy; admin), POST /api/v1/rollouts/dry-run (the waves it would
run), POST /api/v1/rollouts/{id}/cancel | resume | retry-failed (admin)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cloud_orchestrator.console.api.common import (
    blocking,
    json_body,
    orchestrator,
    query_int,
    reply,
)
from cloud_orchestrator.console.auth import principal_of, require_admin
from cloud_orchestrator.console.errors import ApiError
from cloud_orchestrator.console.keys import OWNER
from cloud_orchestrator.console.rollout_actions import DeployRequest, RolloutActions
from cloud_orchestrator.rollouts.records import RolloutRecord

__all__ = ["routes"]

routes = web.RouteTableDef()
TARGETS_SHOWN = 500  # a rollout of 10,000 gateways is polled every second by its page


def _actions(request: web.Request) -> RolloutActions:
    return RolloutActions(orchestrator(request).rollouts, request.app[OWNER])


def _waves(record: RolloutRecord) -> list[dict[str, Any]]:
    waves: list[dict[str, Any]] = [
        {"wave": i + 1, "states": {}, "gateways": 0} for i in range(record.wave_count)
    ]
    for target in record.targets:
        wave = waves[target.wave]
        wave["gateways"] += 1
        wave["states"][target.state] = wave["states"].get(target.state, 0) + 1
    return waves


def _detail(
    actions: RolloutActions, rollout_id: str, state: str = "", limit: int = TARGETS_SHOWN
) -> dict[str, Any]:
    """The rollout with its waves counted over every target; ``targets`` holds at most
    ``limit`` of them (those in ``state`` when given), ``targets_total`` how many match."""
    record = actions.store.get(rollout_id)
    data = record.to_dict()
    chosen = [t for t in record.targets if not state or t.state == state]
    data["targets"] = [t.to_dict() for t in chosen[:limit]]
    data["targets_total"] = len(chosen)
    data["waves"] = _waves(record)
    data["bytes_sent"] = sum(t.bytes_sent for t in record.targets)
    data["events"] = actions.events(rollout_id)
    return data


@routes.get("/api/v1/rollouts")
async def rollouts(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", 50)
    if not 1 <= limit <= 500:
        raise ApiError(422, "invalid", "limit must be 1..500")
    records = await blocking(orchestrator(request).rollouts.recent, limit)
    return reply({"rollouts": [r.to_dict() for r in records]})


@routes.get("/api/v1/rollouts/{rollout_id}")
async def rollout(request: web.Request) -> web.Response:
    limit = query_int(request, "targets_limit", TARGETS_SHOWN)
    if not 0 <= limit <= 100_000:
        raise ApiError(422, "invalid", "targets_limit must be 0..100000")
    state = request.query.get("target_state", "")
    rollout_id = request.match_info["rollout_id"]
    return reply(await blocking(_detail, _actions(request), rollout_id, state, limit))


@routes.post("/api/v1/rollouts/dry-run")
async def dry_run(request: web.Request) -> web.Response:
    principal_of(request)  # a preview changes nothing: read-only operators may look
    deploy = DeployRequest(await json_body(request))
    return reply(await blocking(_actions(request).preview, deploy))


@routes.post("/api/v1/rollouts")
async def create(request: web.Request) -> web.Response:
    actor = require_admin(request).name
    deploy = DeployRequest(await json_body(request))
    actions = _actions(request)
    record = await blocking(actions.deploy, deploy, actor)
    return reply(await blocking(_detail, actions, record.id), status=201)


async def _act(request: web.Request, action: str) -> web.Response:
    actor = require_admin(request).name
    actions = _actions(request)
    rollout_id = request.match_info["rollout_id"]
    method = {
        "cancel": actions.cancel,
        "resume": actions.resume,
        "retry-failed": actions.retry_failed,
    }[action]
    await blocking(method, rollout_id, actor)
    return reply(await blocking(_detail, actions, rollout_id))


@routes.post("/api/v1/rollouts/{rollout_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    return await _act(request, "cancel")


@routes.post("/api/v1/rollouts/{rollout_id}/resume")
async def resume(request: web.Request) -> web.Response:
    return await _act(request, "resume")


@routes.post("/api/v1/rollouts/{rollout_id}/retry-failed")
async def retry_failed(request: web.Request) -> web.Response:
    return await _act(request, "retry-failed")
