"""JSON from untrusted bytes, parsed with a size and a nesting-depth limit.

``json.loads`` recurses once per nested array or object, so a few kilobytes of
``[[[[...`` raise RecursionError, which is no error any tier maps to a status or
a rejection (see the status table in edge_contracts/status.py). The depth is
measured first by a flat scan, without recursion, and the document is refused
with the caller's own error class before ``json.loads`` sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from edge_contracts.errors import EdgeError

__all__ = ["MAX_JSON_DEPTH", "check_json_depth", "json_depth", "loads_limited"]

MAX_JSON_DEPTH = 32
# A complete string literal (skipped whole, so brackets inside strings do not count) or
# one bracket. Written unrolled ("normal* (escape normal*)*") so the regex engine does
# not backtrack per character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in ``data`` (0 for a scalar).

    It never fails: for malformed JSON it gives an upper bound, which is all a
    limit check needs (``json.loads`` then reports the syntax error itself).
    """
    depth = deepest = 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        if len(token) != 1:
            continue  # a string literal
        if token[0] in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
    return deepest


def check_json_depth(
    data: bytes, what: str, error: type[EdgeError], limit: int = MAX_JSON_DEPTH
) -> None:
    """Raise ``error`` naming ``what`` when ``data`` nests deeper than ``limit``."""
    depth = json_depth(data)
    if depth > limit:
        raise error(
            f"{what} nests arrays/objects {depth} levels deep; the limit is {limit}. "
            "Flatten the document"
        )


def loads_limited(
    data: bytes, what: str, error: type[EdgeError], max_bytes: int, limit: int = MAX_JSON_DEPTH
) -> Any:
    """``json.loads`` of UTF-8 ``data`` after its size and depth checks; every failure is
    ``error`` with a message naming ``what``."""
    if len(data) > max_bytes:
        raise error(f"{what} is {len(data)} bytes, the limit is {max_bytes}")
    check_json_depth(data, what, error, limit)
    try:
        return json.loads(data.decode("utf-8"))
    # ValueError, not just JSONDecodeError: an integer literal beyond Python's digit limit
    # (sys.get_int_max_str_digits) raises a plain ValueError.
    except (UnicodeDecodeError, ValueError) as exc:
        raise error(f"{what} is not valid UTF-8 JSON ({exc})") from None
