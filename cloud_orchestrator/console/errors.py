"""The console's one error boundary: every failure of an API route becomes a JSON body
``{"error": {"code": ..., "message": ...}}`` with an exact HTTP status.

Domain errors map by type (the HTTP twin of edge_contracts/status.py's gRPC table);
anything unexpected is a 500 with a short correlation id, its traceback in the log.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from cloud_orchestrator.errors import (
    BundleRefused,
    Conflict,
    CredentialRefused,
    GatewayError,
    InvalidRequest,
    LimitReached,
    NotFound,
    OrchestratorError,
    Unauthenticated,
)

__all__ = ["ApiError", "error_middleware", "error_response"]

logger = logging.getLogger(__name__)

_BY_TYPE: tuple[tuple[type[OrchestratorError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (InvalidRequest, 422, "invalid"),
    (BundleRefused, 422, "bundle_refused"),
    (Conflict, 409, "conflict"),
    (Unauthenticated, 401, "unauthenticated"),
    (CredentialRefused, 403, "forbidden"),
    (LimitReached, 429, "limit_reached"),
    (GatewayError, 502, "gateway_error"),
)
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except OrchestratorError as exc:
        for kind, status, code in _BY_TYPE:
            if isinstance(exc, kind):
                return error_response(status, code, str(exc))
        return _internal(request, exc)
    except json.JSONDecodeError as exc:
        return error_response(400, "bad_request", f"the body is not JSON: {exc}")
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, f"{exc.reason}: {request.method} {request.path}")
    except Exception as exc:
        return _internal(request, exc)


def _internal(request: web.Request, exc: Exception) -> web.Response:
    correlation = uuid.uuid4().hex[:8]
    logger.error(
        "console %s %s failed [%s]", request.method, request.path, correlation, exc_info=exc
    )
    return error_response(
        500, "internal", f"internal error (see the orchestrator log for id {correlation})"
    )


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )
