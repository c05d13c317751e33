"""Who may use the console: an operator's bearer token (scripts) or the session cookie a
token login opens (browsers), CSRF on every state-changing request of a cookie session,
and the admin role for actions.

The cookie is HttpOnly and SameSite=Strict (Secure when the console serves TLS); a
cookie session's POST/DELETE must carry its CSRF token in ``X-CSRF-Token`` (or a form
field ``csrf_token``), which pages receive in a ``<meta name="csrf-token">``. A bearer
token needs no CSRF token: a browser never attaches it on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from aiohttp import web

from cloud_orchestrator.console.errors import ApiError, Handler, error_response
from cloud_orchestrator.console.keys import OPERATORS, OPTIONS, PRINCIPAL
from cloud_orchestrator.console.operators import ADMIN, Principal, same_secret

__all__ = ["auth_middleware", "principal_of", "require_admin", "session_cookie"]

COOKIE = "edge_console_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reachable without a credential: the login itself, static files, Prometheus.
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/login", "/metrics", "/api/v1/session", "/favicon.ico"})
# Logging in again over a live session (another operator) needs no CSRF token: the token
# itself is the proof, and SameSite=Strict keeps other sites' forms from sending the cookie.
LOGIN_PATHS = frozenset({"/login", "/api/v1/session"})
LOCAL = Principal("local", ADMIN)  # --console-no-auth on loopback


def principal_of(request: web.Request) -> Principal:
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:  # a public route asking: nobody is logged in
        raise ApiError(401, "unauthenticated", "log in first (POST /api/v1/session)")
    return principal


def require_admin(request: web.Request) -> Principal:
    principal = principal_of(request)
    if not principal.is_admin:
        raise ApiError(
            403,
            "forbidden",
            f"operator {principal.name!r} has the {principal.role} role: this action "
            "needs an admin (`edge-orchestrator operators add NAME --role admin`)",
        )
    return principal


def session_cookie(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    options = request.app[OPTIONS]
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="Strict",
        secure=options.tls,
        path="/",
        max_age=int(request.app[OPERATORS].session_seconds),
    )


async def _identify(request: web.Request) -> Principal | None:
    """The principal of a bearer token or session cookie; ApiError 401 for a bad token."""
    if request.app[OPTIONS].no_auth:
        return LOCAL
    operators = request.app[OPERATORS]
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'")
        principal = await asyncio.to_thread(operators.by_token, token.strip())
        if principal is None:
            raise ApiError(401, "unauthenticated", "this operator token is unknown or was removed")
        return principal
    cookie = request.cookies.get(COOKIE, "")
    if cookie:
        return await asyncio.to_thread(operators.by_session, cookie)
    return None


async def _csrf_ok(request: web.Request, principal: Principal) -> bool:
    if not principal.csrf_token:  # bearer token or local mode
        return True
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.content_type == "application/x-www-form-urlencoded":
        form: Any = await request.post()
        given = str(form.get("csrf_token", ""))
    return same_secret(given, principal.csrf_token)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        principal = await _identify(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    if principal is None:
        if _public(request.path):
            return await handler(request)
        if request.path.startswith("/api/"):
            return error_response(
                401,
                "unauthenticated",
                "send 'Authorization: Bearer <operator token>' or log in (POST /api/v1/session)",
            )
        target = quote(request.path_qs, safe="/?=&")
        raise web.HTTPSeeOther(f"/login?next={target}")
    logging_in = request.method == "POST" and request.path in LOGIN_PATHS
    if request.method in UNSAFE and not logging_in and not await _csrf_ok(request, principal):
        return error_response(
            403,
            "csrf",
            f"missing or wrong CSRF token: send the page's csrf-token in {CSRF_HEADER} "
            "(reload the page if the session was renewed)",
        )
    request[PRINCIPAL] = principal
    return await handler(request)
