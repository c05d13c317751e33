"""What every API handler needs: the orchestrator, query parameters and JSON bodies
checked into a 422 with the parameter's name, and blocking calls off the event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.errors import ApiError
from cloud_orchestrator.console.keys import ORCHESTRATOR

__all__ = ["blocking", "json_body", "orchestrator", "query_float", "query_int", "reply"]

T = TypeVar("T")
MAX_BODY = 64 * 1024


def orchestrator(request: web.Request) -> Orchestrator:
    return request.app[ORCHESTRATOR]


async def blocking(function: Callable[..., T], *args: Any) -> T:
    """A database call on a worker thread: the event loop keeps serving gateways."""
    return await asyncio.to_thread(function, *args)


def query_int(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiError(422, "invalid", f"{name} must be a whole number, not {text!r}") from None


def query_float(request: web.Request, name: str, default: float) -> float:
    text = request.query.get(name, "")
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ApiError(422, "invalid", f"{name} must be a number, not {text!r}") from None


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too_large", f"the body may be {MAX_BODY} bytes at most")
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", f"the body may be {MAX_BODY} bytes at most")
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "bad_request", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "the body must be a JSON object")
    return body


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, default=str))
