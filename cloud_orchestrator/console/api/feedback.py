"""GET /api/v1/feedback/{model}?versions=A,B&since=&until= (charts' data, hard examples
when the version's policy allows) and GET /api/v1/hard-examples/{id}/image."""

from __future__ import annotations

from aiohttp import web

from cloud_orchestrator.console.api.common import (
    blocking,
    orchestrator,
    query_float,
    reply,
)
from cloud_orchestrator.console.errors import ApiError
from cloud_orchestrator.console.feedback_view import (
    FeedbackQuery,
    default_range,
    feedback_view,
    hard_example,
)

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/api/v1/feedback/{model}")
async def feedback(request: web.Request) -> web.Response:
    orch = orchestrator(request)
    since, until = default_range()
    versions = tuple(v for v in request.query.get("versions", "").split(",") if v.strip())
    query = FeedbackQuery(
        request.match_info["model"],
        tuple(v.strip() for v in versions),
        query_float(request, "since", since),
        query_float(request, "until", until),
    )
    return reply(await blocking(feedback_view, orch.db, orch.registry, query))


@routes.get("/api/v1/hard-examples/{example_id}/image")
async def image(request: web.Request) -> web.Response:
    text = request.match_info["example_id"]
    if not text.isdigit():
        raise ApiError(422, "invalid", f"a hard example id is a number, not {text!r}")
    orch = orchestrator(request)
    data, kind = await blocking(hard_example, orch.db, orch.registry, int(text))
    return web.Response(
        body=data,
        content_type=kind,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"},
    )
