"""Waiting for a gateway that is still starting (`edge-client health --wait SECONDS`)."""

from __future__ import annotations

import time

from edge_client.client import EdgeClient
from edge_client.errors import DeadlineExceeded, Unavailable
from edge_client.results import HealthReport

__all__ = ["FAST_RECONNECT", "wait_until_serving"]

# Channel options for waiting: gRPC's reconnect backoff otherwise grows towards two
# minutes between attempts, so a gateway that comes up would be noticed late.
FAST_RECONNECT = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def wait_until_serving(client: EdgeClient, seconds: float, poll: float = 0.25) -> HealthReport:
    """Ask Health until it says SERVING or ``seconds`` pass. Returns the last report; a
    gateway that never answered raises the last Unavailable (or DeadlineExceeded)."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            report = client.health(timeout=max(0.5, min(client.timeout, remaining)))
        except (Unavailable, DeadlineExceeded):  # not listening yet, or still binding
            if time.monotonic() >= deadline:
                raise
        else:
            if report.serving or time.monotonic() >= deadline:
                return report
        time.sleep(poll)
