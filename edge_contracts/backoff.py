"""Exponential backoff with full jitter: the one retry delay of the project (the gateway's
pull and feedback loops, and the bundle push of edge_client and the orchestrator)."""

from __future__ import annotations

import random


class Backoff:
    """``next()`` returns a delay drawn from [0, min(cap, initial * 2**n)] after the n-th
    failure in a row; ``reset()`` after a success.

    Full jitter (the whole range, not a band around the ceiling) spreads a fleet that
    lost its orchestrator, or gateways that restarted together, the most: their retries
    do not arrive in lockstep.
    """

    def __init__(
        self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The largest delay the next ``next()`` may return."""
        return min(self.cap, self.initial * 2.0**self.failures)

    def next(self) -> float:
        ceiling = self.ceiling()
        self.failures += 1
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.failures = 0
