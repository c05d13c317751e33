"""The one exception type the toolkit raises on purpose.

Every message says what went wrong and, where not obvious, what to do instead.
The CLI prints it as ``model-tools: error: <message>`` and exits with status 1.
"""

from __future__ import annotations

__all__ = ["ToolError"]


class ToolError(Exception):
    """A failure the user can act on (bad input, failed check, failed gate)."""
