"""The console's HTML: one small shell per page (navigation, the operator, the CSRF
token) whose script fetches the JSON API and draws the page; and the login form.

No inline script or style: the Content-Security-Policy allows only this origin's files
(static/), which ship as package data; nothing is loaded from elsewhere.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Any

from aiohttp import web

from cloud_orchestrator.console.auth import principal_of, session_cookie
from cloud_orchestrator.console.keys import OPERATORS

__all__ = ["SECURITY_HEADERS", "routes"]

routes = web.RouteTableDef()

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = (
    ("/fleet", "Fleet"),
    ("/rollouts", "Rollouts"),
    ("/deploy", "Deploy"),
    ("/models", "Models"),
    ("/feedback", "Feedback"),
)


def _page(request: web.Request, title: str, script: str, **data: str) -> web.Response:
    principal = principal_of(request)
    links = "".join(
        f'<a href="{href}"{" class=current" if request.path.startswith(href) else ""}>{name}</a>'
        for href, name in NAV
    )
    attributes = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in data.items())
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{escape(principal.csrf_token)}">
<title>{escape(title)} - edge-orchestrator</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body{attributes}>
<header><strong>edge-orchestrator</strong><nav>{links}</nav>
<form method="post" action="/logout" class="who"><span id="operator">{escape(principal.name)}
({escape(principal.role)})</span>
<input type="hidden" name="csrf_token" value="{escape(principal.csrf_token)}">
<button type="submit">Log out</button></form></header>
<main id="main"><h1>{escape(title)}</h1><div id="content">Loading...</div></main>
<script src="/static/console.js"></script><script src="/static/{script}"></script>
</body></html>"""
    return web.Response(text=body, content_type="text/html", headers=SECURITY_HEADERS)


@routes.get("/")
async def home(_request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/fleet")


@routes.get("/favicon.ico")
async def favicon(_request: web.Request) -> web.Response:
    return web.Response(status=204)  # no icon: browsers ask anyway


@routes.get("/fleet")
async def fleet(request: web.Request) -> web.Response:
    return _page(request, "Fleet", "fleet.js")


@routes.get("/rollouts")
async def rollouts(request: web.Request) -> web.Response:
    return _page(request, "Rollouts", "rollouts.js")


@routes.get("/rollouts/{rollout_id}")
async def rollout(request: web.Request) -> web.Response:
    rollout_id = request.match_info["rollout_id"]
    return _page(request, f"Rollout {rollout_id}", "rollout.js", rollout=rollout_id)


@routes.get("/deploy")
async def deploy(request: web.Request) -> web.Response:
    return _page(request, "Deploy", "deploy.js")


@routes.get("/models")
async def models(request: web.Request) -> web.Response:
    return _page(request, "Models", "models.js")


@routes.get("/models/{name}")
async def model(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return _page(request, f"Model {name}", "models.js", model=name)


@routes.get("/feedback")
async def feedback(request: web.Request) -> web.Response:
    return _page(request, "Feedback", "feedback.js")


def _login_form(message: str = "", next_path: str = "/fleet") -> str:
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in - edge-orchestrator</title>
<link rel="stylesheet" href="/static/console.css"></head>
<body class="login"><main><h1>edge-orchestrator console</h1>{note}
<form method="post" action="/login">
<label for="token">Operator token</label>
<input id="token" name="token" type="password" autocomplete="off" required autofocus>
<input type="hidden" name="next" value="{escape(next_path)}">
<button type="submit" id="login">Log in</button></form>
<p class="hint">An admin creates tokens with <code>edge-orchestrator operators add NAME</code>.</p>
</main></body></html>"""


def _safe_next(value: Any) -> str:
    """Only a path on this console: never an open redirect."""
    text = str(value or "")
    return text if text.startswith("/") and not text.startswith("//") else "/fleet"


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    form = _login_form(next_path=_safe_next(request.query.get("next")))
    return web.Response(text=form, content_type="text/html", headers=SECURITY_HEADERS)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    form: Any = await request.post()
    next_path = _safe_next(form.get("next"))
    opened = await asyncio.to_thread(
        request.app[OPERATORS].open_session, str(form.get("token", ""))
    )
    if opened is None:
        text = _login_form("That token is unknown or was removed.", next_path)
        return web.Response(
            text=text, status=401, content_type="text/html", headers=SECURITY_HEADERS
        )
    response = web.HTTPSeeOther(next_path)
    session_cookie(response, request, opened[0])
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    await asyncio.to_thread(request.app[OPERATORS].close_session, principal_of(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie("edge_console_session", path="/")
    raise response
