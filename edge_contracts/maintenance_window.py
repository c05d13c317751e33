"""Maintenance windows: ``HH:MM-HH:MM`` in a gateway's local time, when activations may
happen (downloads may happen any time).

A window whose end is before its start wraps midnight (``22:00-02:00``); the start is
inside, the end is not. The orchestrator evaluates windows for push-mode gateways with
the UTC offset each gateway reports; a pull-mode gateway evaluates its own.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

__all__ = ["MaintenanceWindow", "WindowError", "local_seconds_of_day"]

_WINDOW = re.compile(r"\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]):([0-5]\d)\s*")
_DAY = 86_400


class WindowError(ValueError):
    """A window that is not ``HH:MM-HH:MM``."""


def local_seconds_of_day(utc_offset_seconds: int | None = None, now: float | None = None) -> int:
    """Seconds since local midnight; this machine's offset when none is given."""
    moment = time.time() if now is None else now
    if utc_offset_seconds is None:
        utc_offset_seconds = time.localtime(moment).tm_gmtoff
    return int(moment + utc_offset_seconds) % _DAY


@dataclass(frozen=True)
class MaintenanceWindow:
    start: int  # seconds after local midnight
    end: int

    @classmethod
    def parse(cls, text: str) -> MaintenanceWindow:
        match = _WINDOW.fullmatch(text)
        if match is None:
            raise WindowError(
                f"window {text!r} is not HH:MM-HH:MM in 24-hour local time, such as 02:00-04:00"
            )
        start = int(match[1]) * 3600 + int(match[2]) * 60
        end = int(match[3]) * 3600 + int(match[4]) * 60
        if start == end:
            raise WindowError(f"window {text!r} is empty: its start and end are the same")
        return cls(start, end)

    def __str__(self) -> str:
        return f"{self._clock(self.start)}-{self._clock(self.end)}"

    @staticmethod
    def _clock(seconds: int) -> str:
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"

    def contains(self, seconds_of_day: int) -> bool:
        if self.start < self.end:
            return self.start <= seconds_of_day < self.end
        return seconds_of_day >= self.start or seconds_of_day < self.end

    def seconds_until_open(self, seconds_of_day: int) -> int:
        """0 inside the window, else the seconds until it next opens."""
        if self.contains(seconds_of_day):
            return 0
        return (self.start - seconds_of_day) % _DAY
