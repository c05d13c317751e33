"""What the console's handlers share through the aiohttp application: the orchestrator,
the operator store, the options, and the principal of a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from cloud_orchestrator.app import Orchestrator
    from cloud_orchestrator.console.operators import Operators, Principal

__all__ = [
    "METRICS",
    "OPERATORS",
    "OPTIONS",
    "ORCHESTRATOR",
    "OWNER",
    "PRINCIPAL",
    "ConsoleOptions",
    "RenderMetrics",
]

# The Prometheus text page of GET /metrics (blocking: called on a worker thread).
RenderMetrics = Callable[[], bytes]


@dataclass(frozen=True)
class ConsoleOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Allowed on a loopback address only (cli/serve.py refuses it elsewhere): every
    # request is the admin "local". Logged as a warning at start.
    no_auth: bool = False
    # Seen within this long: online (serve sets it to the metrics' presence window).
    online_seconds: float = 90.0

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


ORCHESTRATOR: web.AppKey[Orchestrator] = web.AppKey("orchestrator")
OPERATORS: web.AppKey[Operators] = web.AppKey("operators")
OPTIONS: web.AppKey[ConsoleOptions] = web.AppKey("options")
OWNER: web.AppKey[str] = web.AppKey("owner")  # this process in rollout events
METRICS: web.AppKey[RenderMetrics | None] = web.AppKey("metrics")
# The Principal of an authenticated request.
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
