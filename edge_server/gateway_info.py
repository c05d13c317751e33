"""Identity and lifecycle facts of one gateway process, reported by every face's health."""

from __future__ import annotations

import time


class GatewayInfo:
    """Identity and lifecycle facts that Health reports."""

    def __init__(self, gateway_id: str, software_version: str) -> None:
        self.gateway_id = gateway_id
        self.software_version = software_version
        self.started = time.monotonic()
        self.shutting_down = False
