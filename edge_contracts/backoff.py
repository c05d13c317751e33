"""Exponential backoff with full jitter, for retrying calls to the orchestrator (pull, feedback)."""

from __future__ import annotations

import random


class Backoff:
    """``next()`` returns a delay drawn from [base/2, min(cap, base * 2**n)]; ``reset()``
    after a success. Jitter keeps a fleet that lost the cloud together from
    reconnecting in lockstep."""

    def __init__(
        self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.initial * (2**self.failures))
        self.failures += 1
        return self._rng.uniform(min(self.initial / 2, ceiling), ceiling)

    def reset(self) -> None:
        self.failures = 0
