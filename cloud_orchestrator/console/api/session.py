"""POST /api/v1/session (log in with a token; sets the session cookie), GET (who am I),
DELETE (log out)."""

from __future__ import annotations

from aiohttp import web

from cloud_orchestrator.console.api.common import blocking, json_body, reply
from cloud_orchestrator.console.auth import COOKIE, principal_of, session_cookie
from cloud_orchestrator.console.errors import ApiError
from cloud_orchestrator.console.keys import OPERATORS

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.post("/api/v1/session")
async def log_in(request: web.Request) -> web.Response:
    body = await json_body(request)
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise ApiError(422, "invalid", "token is required: the operator token to log in with")
    opened = await blocking(request.app[OPERATORS].open_session, token)
    if opened is None:
        raise ApiError(401, "unauthenticated", "this operator token is unknown or was removed")
    session_id, principal = opened
    response = reply(
        {"operator": principal.name, "role": principal.role, "csrf_token": principal.csrf_token}
    )
    session_cookie(response, request, session_id)
    return response


@routes.get("/api/v1/session")
async def whoami(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return reply(
        {"operator": principal.name, "role": principal.role, "csrf_token": principal.csrf_token}
    )


@routes.delete("/api/v1/session")
async def log_out(request: web.Request) -> web.Response:
    await blocking(request.app[OPERATORS].close_session, principal_of(request))
    response = reply({"logged_out": True})
    response.del_cookie(COOKIE, path="/")
    return response
