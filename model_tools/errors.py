"""The one exception type the toolkit raises on purpose, and one-line error texts.

Every message says what went wrong and, where not obvious, what to do instead.
The CLI prints it as ``model-tools: error: <message>`` and exits with status 1 (2 when
the command cannot start: a usage mistake or a missing optional package).
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["TOOLS_EXTRA", "ToolError", "error_summary", "missing_extra", "require_file"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOOLS_EXTRA = "pip install 'edge-inference-gateway[tools]'"
# Top-level modules of the `tools` extra (setup.cfg); onnxruntime and pillow are base needs.
_TOOLS_MODULES = frozenset({"torch", "onnx", "onnxscript", "sklearn", "skimage", "tqdm"})


class ToolError(Exception):
    """A failure the user can act on (bad input, failed check, failed gate)."""


def require_file(path: Path, what: str = "file") -> Path:
    """Return ``path`` when it is an existing regular file, else raise ToolError."""
    if not path.exists():
        raise ToolError(f"{what} not found: {path}")
    if not path.is_file():
        raise ToolError(f"{what} is not a regular file: {path}")
    return path


def error_summary(exc: BaseException) -> str:
    """The innermost cause's type and first line, without colour codes, at most 300 chars.

    Library errors (ONNX Runtime, torch) span many lines; a CLI error is one line.
    """
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = _ANSI.sub("", str(exc)).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".strip(": ")
    return text if len(text) <= 300 else text[:297] + "..."


def missing_extra(command: str, exc: ModuleNotFoundError) -> str | None:
    """The message for a module of the tools extra that is not installed, else None."""
    module = (exc.name or "").partition(".")[0]
    if module not in _TOOLS_MODULES:
        return None
    return (
        f"'model-tools {command}' needs the tools extra (missing module {module!r}): {TOOLS_EXTRA}"
    )
