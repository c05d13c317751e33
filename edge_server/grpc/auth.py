"""The gateway's management plane: which calls need the management token.

Inference stays open on its interface; every method listed in
``MANAGEMENT_METHOD_PREFIXES`` needs the management token when one is configured. The
bearer-token check itself is shared with the orchestrator (edge_contracts/credentials.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_contracts.credentials import BearerTokenInterceptor

logger = logging.getLogger(__name__)

# Full method names ("/package.Service/Method") or service prefixes ("/package.Service/").
MANAGEMENT_METHOD_PREFIXES: tuple[str, ...] = (
    "/edge.v1.ModelService/",
    "/inference.GRPCInferenceService/RepositoryModelLoad",
    "/inference.GRPCInferenceService/RepositoryModelUnload",
)


def is_management_method(method: str) -> bool:
    return method.startswith(MANAGEMENT_METHOD_PREFIXES)


class ManagementAuthInterceptor(BearerTokenInterceptor):
    """Refuses management calls without the configured bearer token."""

    def __init__(self, token: str, on_failure: Callable[[str, str], None] | None = None) -> None:
        def refused(method: str, reason: str) -> None:
            logger.warning("management call %s refused: %s token", method, reason)
            if on_failure is not None:
                on_failure(method, reason)

        super().__init__(
            token,
            protects=is_management_method,
            missing_message=lambda method: (
                f"{method} is a management call and needs the gateway's management token: "
                "pass it with `edge-client --token TOKEN` (or --token-file FILE, or set "
                "EDGE_TOKEN), or send gRPC metadata 'authorization: Bearer <token>'"
            ),
            invalid_message=lambda method: (
                f"{method}: the bearer token is not valid for this gateway"
            ),
            on_failure=refused,
        )
