"""Running an installed console script from the neutral folder and judging what it did:
a clean environment, bounded time, and a failure message that shows the command and
the end of its output."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Sequence
from typing import Any

from tests.arm64.aarch64_env import SmokeFailure
from tests.installed.workspace import clean_env

CALL_TIMEOUT = 180.0  # seconds; every command here finishes in a few


def shown(command: Sequence[str]) -> str:
    return " ".join(command)


def tail(text: str, chars: int = 2500) -> str:
    text = text.strip()
    return text if len(text) <= chars else "..." + text[-chars:]


def call(command: Sequence[str], timeout: float = CALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run to completion in the current (neutral) folder; killed after `timeout`."""
    try:
        return subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SmokeFailure(f"did not finish in {timeout:.0f} s: {shown(command)}") from None


def exit_text(code: int) -> str:
    return f"{code} ({signal.Signals(-code).name})" if code < 0 else str(code)


def failed(result: subprocess.CompletedProcess[str], expectation: str) -> SmokeFailure:
    return SmokeFailure(
        f"{expectation}; exit {exit_text(result.returncode)}: {shown(result.args)}\n"
        f"{tail(result.stdout + result.stderr)}"
    )


def ok(command: Sequence[str], timeout: float = CALL_TIMEOUT) -> str:
    """stdout of a command that must exit 0."""
    result = call(command, timeout)
    if result.returncode != 0:
        raise failed(result, "expected exit 0")
    return result.stdout


def parse_json(out: str, command: Sequence[str]) -> Any:
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise SmokeFailure(f"not JSON ({exc}): {shown(command)}\n{tail(out)}") from None


def ok_json(command: Sequence[str], timeout: float = CALL_TIMEOUT) -> Any:
    """The JSON document a `--json` command printed (exit 0)."""
    return parse_json(ok(command, timeout), command)


def refused_without_extra(command: Sequence[str], extra: str) -> str:
    """A command of an extra that is not installed (README, Installing): non-zero exit, no
    traceback, one line on stderr naming the extra (as a word: `model-tools` does not
    count for `tools`)."""
    result = call(command)
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    problems = []
    if result.returncode == 0:
        problems.append("exit 0")
    if "Traceback" in result.stderr:
        problems.append("a traceback on stderr")
    if not re.search(rf"(?<![\w-]){re.escape(extra)}(?![\w-])", result.stderr):
        problems.append(f"stderr does not name the extra '{extra}'")
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr")
    if problems:
        raise failed(
            result, f"expected a one-line error naming [{extra}], got {', '.join(problems)}"
        )
    return f"exit {exit_text(result.returncode)}: {lines[0]}"


def expect(condition: bool, message: str) -> None:
    """A fact a step checks; its message says what was seen instead."""
    if not condition:
        raise SmokeFailure(message)
