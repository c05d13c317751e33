"""Rollout planning: strategies, waves and failure thresholds (pure functions).

Strategies:

- ``all``: one wave with every selected gateway.
- ``canary:N``: N gateways first, then the rest.
- ``waves:1,10%,50%,100%``: cumulative targets; each wave adds the gateways needed to
  reach its target (a count or a share of the fleet, rounded up). Empty waves are
  skipped and any gateways left after the last target form a final wave.

Gateways are ordered by id, so a plan is the same every time it is computed.
A wave halts the rollout when its failures exceed ``max_failures`` (a count such
as ``0`` or ``2``, or a share of the wave such as ``20%``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from cloud_orchestrator.errors import InvalidRequest

__all__ = ["FailureThreshold", "Strategy", "plan_waves"]


def _target(item: str, total: int) -> int:
    item = item.strip()
    try:
        if item.endswith("%"):
            share = float(item[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return max(1, math.ceil(total * share / 100))
        count = int(item)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise InvalidRequest(
            f"wave size {item!r} must be a positive count or a percentage in (0, 100]"
        ) from None


@dataclass(frozen=True)
class Strategy:
    kind: str  # all | canary | waves
    steps: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Strategy:
        text = text.strip()
        if text == "all":
            return cls("all")
        kind, _, rest = text.partition(":")
        if kind == "canary" and rest:
            _target(rest, 1)
            return cls("canary", (rest.strip(),))
        if kind == "waves" and rest:
            steps = tuple(s.strip() for s in rest.split(",") if s.strip())
            for step in steps:
                _target(step, 1)
            if steps:
                return cls("waves", steps)
        raise InvalidRequest(
            f"strategy {text!r} is not one of: all, canary:N, waves:A,B,... (counts or "
            "percentages, e.g. waves:1,10%,50%,100%)"
        )

    def __str__(self) -> str:
        if self.kind == "all":
            return "all"
        return f"{self.kind}:{','.join(self.steps)}"


def plan_waves(gateway_ids: Sequence[str], strategy: Strategy) -> list[list[str]]:
    """Split gateways into waves (each wave a list of ids, sorted)."""
    ordered = sorted(set(gateway_ids))
    total = len(ordered)
    if total == 0:
        return []
    if strategy.kind == "all":
        return [ordered]
    targets = [_target(step, total) for step in strategy.steps]
    if strategy.kind == "canary":
        targets = [targets[0], total]
    waves: list[list[str]] = []
    done = 0
    for target in targets:
        target = min(target, total)
        if target > done:
            waves.append(ordered[done:target])
            done = target
    if done < total:
        waves.append(ordered[done:])
    return waves


@dataclass(frozen=True)
class FailureThreshold:
    text: str
    count: int | None = None
    share: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailureThreshold:
        raw = text.strip()
        try:
            if raw.endswith("%"):
                share = float(raw[:-1])
                if not 0 <= share <= 100:
                    raise ValueError
                return cls(raw, share=share / 100)
            count = int(raw)
            if count < 0:
                raise ValueError
            return cls(raw, count=count)
        except ValueError:
            raise InvalidRequest(
                f"max failures {text!r} must be a count >= 0 or a percentage such as 20%"
            ) from None

    def exceeded(self, failures: int, wave_size: int) -> bool:
        if self.count is not None:
            return failures > self.count
        assert self.share is not None
        return failures > self.share * wave_size
