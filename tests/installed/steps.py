"""Numbered steps printed as they pass. A failed step is recorded with its message and
the steps that need it are skipped, the rest still run: one run of the stage names
every broken step, not only the first."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable

from tests.arm64.aarch64_env import SmokeFailure

LABEL = "wheel-e2e"


def say(text: str) -> None:
    print(f"{LABEL}: {text}", flush=True)


def headline(message: str) -> str:
    """The first line (what was expected, the command) and the last (usually the error)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " | ".join(lines[:1] + lines[-1:]) if len(lines) > 1 else "".join(lines)


class Steps:
    """Runs each step's action (which returns a one-line summary) and keeps the score."""

    def __init__(self) -> None:
        self.number = 0
        self.passed = 0
        self.failures: list[str] = []
        self.skipped: list[str] = []
        self._broken: set[str] = set()

    def run(
        self, title: str, action: Callable[[], str], key: str = "", needs: Iterable[str] = ()
    ) -> bool:
        """True when the step passed; `key` names it for the `needs` of later steps."""
        self.number += 1
        label = f"{self.number:2d}. {title}"
        missing = [need for need in needs if need in self._broken]
        if missing:
            self._broken.add(key or title)
            self.skipped.append(label)
            say(f"{label}: SKIPPED (needs {', '.join(missing)})")
            return False
        started = time.monotonic()
        try:
            summary = action()
        except Exception as exc:  # a driver bug is reported as this step's failure too
            self._broken.add(key or title)
            message = str(exc) if isinstance(exc, SmokeFailure) else f"{type(exc).__name__}: {exc}"
            self.failures.append(f"{label}: {headline(message)}")
            print(f"{LABEL}: {label}: FAILED: {message}", file=sys.stderr, flush=True)
            return False
        self.passed += 1
        say(f"{label}: {summary} ({time.monotonic() - started:.1f} s)")
        return True

    def ok(self, key: str) -> bool:
        return key not in self._broken
