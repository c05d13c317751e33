"""Does a command's real output say what the document shows?

What matters is compared exactly: names, states, versions, integers (class ids, byte
counts, exit codes). What legitimately varies is not: whitespace and line breaks
(a document may fold JSON onto fewer lines), decimal numbers (latencies,
confidences), dates and times. ``...`` in the document stands for any text, also
across lines.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"(?P<ellipsis>\.\.\.|…)"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<time>\d{2}:\d{2}:\d{2})"
    r"|(?P<decimal>-?\d+\.\d+(?:[eE]-?\d+)?)"
)
_ANY_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_PATTERNS = {
    "ellipsis": ".*?",
    "date": r"\d{4}-\d{2}-\d{2}",
    "time": r"\d{2}:\d{2}:\d{2}",
    "decimal": _ANY_NUMBER,
}


def screen_text(raw: str) -> str:
    """What a terminal would show: a carriage return rewrites its line (progress bars)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in raw.split("\n"))


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def expected_pattern(expected: str) -> re.Pattern[str]:
    squeezed = _squeeze(expected)
    parts: list[str] = []
    position = 0
    for match in _TOKEN.finditer(squeezed):
        parts.append(re.escape(squeezed[position : match.start()]))
        kind = match.lastgroup
        assert kind is not None
        parts.append(_PATTERNS[kind])
        position = match.end()
    parts.append(re.escape(squeezed[position:]))
    return re.compile("".join(parts), re.DOTALL)


def output_matches(expected_lines: tuple[str, ...], actual: str) -> bool:
    if not expected_lines:
        return True
    pattern = expected_pattern("\n".join(expected_lines))
    return pattern.fullmatch(_squeeze(screen_text(actual))) is not None
