"""A model's feedback privacy policy, from the ``feedback`` section of its manifest.

```json
"feedback": {"policy": "hard_examples", "low_confidence": 0.5,
             "max_examples_per_hour": 60, "max_example_bytes": 262144,
             "triggers": ["low_confidence", "shadow_disagreement", "low_margin", "drift_burst"],
             "low_margin": 0.2}
```

``aggregates`` (the default, also for a missing or invalid section) sends counts,
histograms and latency summaries only: no input data leaves the gateway.
``hard_examples`` additionally sends inputs whose top-1 confidence is below
``low_confidence``, capped per hour and in size. ``triggers`` says which inputs are
hard: top-1 confidence below ``low_confidence``, a shadow version disagreeing, top-1
minus top-2 probability below ``low_margin``, or any input while the drift monitor
marks the version as drifting (docs/drift.md); the default keeps the first two.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edge_contracts.manifest import Manifest

__all__ = ["AGGREGATES", "HARD_EXAMPLES", "TRIGGERS", "FeedbackPolicy", "policy_from_manifest"]

logger = logging.getLogger(__name__)

AGGREGATES = "aggregates"
HARD_EXAMPLES = "hard_examples"
TRIGGERS = ("low_confidence", "shadow_disagreement", "low_margin", "drift_burst")
DEFAULT_TRIGGERS = frozenset({"low_confidence", "shadow_disagreement"})


@dataclass(frozen=True)
class FeedbackPolicy:
    policy: str = AGGREGATES
    low_confidence: float = 0.5
    max_examples_per_hour: int = 60
    max_example_bytes: int = 256 * 1024
    triggers: frozenset[str] = DEFAULT_TRIGGERS
    low_margin: float = 0.2

    @property
    def allows_examples(self) -> bool:
        return self.policy == HARD_EXAMPLES and self.max_examples_per_hour > 0

    def triggered(self, trigger: str) -> bool:
        """Examples are allowed and ``trigger`` is one of the policy's reasons to keep one."""
        return self.allows_examples and trigger in self.triggers


def _triggers(raw: dict[str, Any]) -> frozenset[str]:
    value = raw.get("triggers")
    if value is None:
        return DEFAULT_TRIGGERS
    if not isinstance(value, list) or not all(t in TRIGGERS for t in value):
        raise ValueError(f"feedback.triggers must be a list of {', '.join(TRIGGERS)}")
    return frozenset(value)


def _number(raw: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"feedback.{key} must be a number in [{low:g}, {high:g}]")
    return float(value)


def policy_from_manifest(manifest: Manifest) -> FeedbackPolicy:
    raw = manifest.extra.get("feedback")
    if raw is None:
        return FeedbackPolicy()
    try:
        if not isinstance(raw, dict):
            raise ValueError("'feedback' must be an object")
        policy = raw.get("policy", AGGREGATES)
        if policy not in (AGGREGATES, HARD_EXAMPLES):
            raise ValueError(f"feedback.policy must be {AGGREGATES!r} or {HARD_EXAMPLES!r}")
        return FeedbackPolicy(
            policy=policy,
            low_confidence=_number(raw, "low_confidence", 0.5, 0.0, 1.0),
            max_examples_per_hour=int(_number(raw, "max_examples_per_hour", 60, 0, 1e6)),
            max_example_bytes=int(_number(raw, "max_example_bytes", 256 * 1024, 1, 16 << 20)),
            triggers=_triggers(raw),
            low_margin=_number(raw, "low_margin", 0.2, 0.0, 1.0),
        )
    except ValueError as exc:
        logger.warning(
            "model %s version %s: %s; sending aggregates only", manifest.name, manifest.version, exc
        )
        return FeedbackPolicy()
