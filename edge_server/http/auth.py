"""The management token over HTTP: ``Authorization: Bearer <token>``, as on gRPC.

The same token (``--management-token`` / ``--management-token-file``) guards the same
operations: the routes marked ``management`` in the table (V2 repository load and
unload). Without a token those routes are open, as the gRPC management calls are
(the gateway warns at start unless mTLS is on).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web

from edge_server.errors import AccessDenied, Unauthenticated


class BearerCheck:
    def __init__(self, token: str, on_failure: Callable[[str], None] | None = None) -> None:
        self._expected = f"Bearer {token}".encode() if token else b""
        self._on_failure = on_failure

    def __call__(self, request: web.BaseRequest) -> None:
        """Raise Unauthenticated (401) or AccessDenied (403) unless the token is right."""
        if not self._expected:
            return
        presented = request.headers.get("Authorization")
        if presented is None:
            self._failed("missing")
            raise Unauthenticated(
                f"{request.method} {request.path} is a management call and needs the "
                "gateway's management token: send the header 'Authorization: Bearer <token>'"
            )
        if not hmac.compare_digest(presented.encode(), self._expected):
            self._failed("invalid")
            raise AccessDenied(
                f"{request.method} {request.path}: the bearer token is not valid for this gateway"
            )

    def _failed(self, reason: str) -> None:
        if self._on_failure is not None:
            self._on_failure(reason)
