"""The one exception type the toolkit raises on purpose, and one-line error texts.

Every message says what went wrong and, where not obvious, what to do instead.
The CLI prints it as ``model-tools: error: <message>`` and exits with status 1.
"""

from __future__ import annotations

import re

__all__ = ["ToolError", "error_summary"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ToolError(Exception):
    """A failure the user can act on (bad input, failed check, failed gate)."""


def error_summary(exc: BaseException) -> str:
    """The innermost cause's type and first line, without colour codes, at most 300 chars.

    Library errors (ONNX Runtime, torch) span many lines; a CLI error is one line.
    """
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = _ANSI.sub("", str(exc)).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".strip(": ")
    return text if len(text) <= 300 else text[:297] + "..."
