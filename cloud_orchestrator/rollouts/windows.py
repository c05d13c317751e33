"""Maintenance windows per label selector: ``--window [SELECTOR@]HH:MM-HH:MM``.

Each ``--window`` gives a window in the gateway's local time, for the gateways matching
its selector (all of them without one); the first matching window applies, and a gateway
no window matches activates at any time. Windows gate activation, not download: a
gateway outside its window gets the version staged (verified on disk) and activates it
when the window opens. For push-mode gateways the orchestrator reads the UTC offset each
gateway reports; pull-mode gateways get the window in their desired state and decide.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.fleet.selector import Selector
from edge_contracts.maintenance_window import MaintenanceWindow, WindowError

__all__ = ["WindowRule", "parse_windows", "window_for", "windows_from_json", "windows_to_json"]


@dataclass(frozen=True)
class WindowRule:
    selector: Selector
    window: MaintenanceWindow

    def __str__(self) -> str:
        return f"{self.selector.text}@{self.window}"


def _rule(spec: str) -> WindowRule:
    selector, at, window = spec.rpartition("@")
    try:
        parsed = MaintenanceWindow.parse(window)
    except WindowError as exc:
        raise InvalidRequest(f"--window {spec!r}: {exc} (optionally after SELECTOR@)") from None
    return WindowRule(Selector.parse(selector if at else "all"), parsed)


def parse_windows(specs: Sequence[str]) -> tuple[WindowRule, ...]:
    return tuple(_rule(spec) for spec in specs)


def windows_to_json(rules: Sequence[WindowRule]) -> str:
    return json.dumps([[r.selector.text, str(r.window)] for r in rules]) if rules else ""


def windows_from_json(text: str) -> tuple[WindowRule, ...]:
    if not text:
        return ()
    items: list[Any] = json.loads(text)
    return tuple(
        WindowRule(Selector.parse(selector), MaintenanceWindow.parse(window))
        for selector, window in items
    )


def window_for(
    rules: Sequence[WindowRule], gateway_id: str, labels: Mapping[str, Any]
) -> MaintenanceWindow | None:
    for rule in rules:
        if rule.selector.matches(gateway_id, labels):
            return rule.window
    return None
