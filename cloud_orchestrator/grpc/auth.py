"""Fleet token on OrchestratorService: ``authorization: Bearer <token>`` metadata.

Without a configured token the service is open (a warning is logged at start-up);
answers are given before the servicer runs (edge_contracts/credentials.py).
"""

from __future__ import annotations

import logging

from edge_contracts.credentials import REFUSAL_CODES, BearerTokenInterceptor

__all__ = ["FleetTokenInterceptor"]

logger = logging.getLogger(__name__)

_PREFIX = "/edge.v1.OrchestratorService/"


def _log_refusal(method: str, reason: str) -> None:
    logger.warning("refused %s: %s", method, REFUSAL_CODES[reason].name)


class FleetTokenInterceptor(BearerTokenInterceptor):
    """Refuses OrchestratorService calls without the fleet's bearer token."""

    def __init__(self, token: str) -> None:
        super().__init__(
            token,
            protects=lambda method: method.startswith(_PREFIX),
            missing_message=lambda method: (
                f"{method}: send metadata 'authorization: Bearer <fleet token>' "
                "(edge-server --orchestrator-token)"
            ),
            invalid_message=lambda method: f"{method}: wrong fleet token",
            on_failure=_log_refusal,
        )
