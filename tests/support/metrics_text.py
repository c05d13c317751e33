"""Reading Prometheus text exposition in tests."""

from __future__ import annotations

import re


def sample(text: str, name: str, **labels: str) -> float:
    """Value of one series in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def samples(text: str, name: str, **labels: str) -> list[float]:
    """Values of every series that matches (one per process with ``--workers``)."""
    found = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(series.get(k) == v for k, v in labels.items()):
            found.append(float(line.rsplit(" ", 1)[1]))
    return found


def total(text: str, name: str, **labels: str) -> float:
    """The sum over every process of one series (0 when absent)."""
    return sum(samples(text, name, **labels))
