"""Label selectors of the fleet: ``all`` (or ``*``), or comma-separated terms that must
all hold: ``site=berlin``, ``hardware!=rpi4``, ``site=berlin|paris`` (any of),
``id=gw-1|gw-2``; and ``KEY=VALUE`` label lists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloud_orchestrator.errors import InvalidRequest

__all__ = ["Selector", "parse_labels"]


def parse_labels(text: str) -> dict[str, str]:
    """``site=berlin,hardware=rpi4`` -> dict."""
    labels: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"label {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


@dataclass(frozen=True)
class Selector:
    text: str
    terms: tuple[tuple[str, bool, frozenset[str]], ...]  # key, negated, values

    @classmethod
    def parse(cls, text: str) -> Selector:
        text = text.strip()
        if text in ("all", "*", ""):
            return cls("all", ())
        terms = []
        for item in text.split(","):
            item = item.strip()
            negated = "!=" in item
            key, sep, values = item.partition("!=" if negated else "=")
            if not sep or not key.strip() or not values.strip():
                raise InvalidRequest(
                    f"selector term {item!r} is not KEY=VALUE, KEY!=VALUE or KEY=A|B (or use 'all')"
                )
            terms.append((key.strip(), negated, frozenset(v.strip() for v in values.split("|"))))
        return cls(text, tuple(terms))

    def matches(self, gateway_id: str, labels: Mapping[str, Any]) -> bool:
        for key, negated, values in self.terms:
            actual = gateway_id if key == "id" else labels.get(key)
            hit = actual is not None and str(actual) in values
            if hit == negated:
                return False
        return True
