"""What the primary and its replicas tell each other, one JSON object per line.

Primary -> replica (the replica's stdin): which version of a model is active, after
every change on the primary, numbered. The files are already on disk by then (the
primary activates only versions it has stored), so a line names a version, never bytes.

Replica -> primary (the replica's stdout): one hello once its ports are bound, then a
``Followed`` line each time it has applied every event up to a number: the primary
answers a management call only once its replicas have followed (read your writes on
any connection).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


def _line(message: Any) -> bytes:
    """One message as a compact JSON line."""
    return json.dumps(asdict(message), separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True)
class ModelEvent:
    """The state of one model on the primary. ``version`` is "" when none is active."""

    model: str
    version: str
    state: str
    seq: int = 0  # the primary's running count of events

    def encode(self) -> bytes:
        return _line(self)

    @classmethod
    def decode(cls, line: bytes) -> ModelEvent:
        data = json.loads(line)
        return cls(
            str(data["model"]), str(data["version"]), str(data["state"]), int(data.get("seq", 0))
        )


@dataclass(frozen=True)
class Followed:
    """A replica has applied (or failed, and logged) every event up to ``seq``."""

    seq: int

    def encode(self) -> bytes:
        return _line(self)

    @classmethod
    def decode(cls, line: bytes) -> Followed:
        return cls(int(json.loads(line)["seq"]))


@dataclass(frozen=True)
class Hello:
    """A replica is listening (its ports and its private /metrics socket): its PID."""

    pid: int

    def encode(self) -> bytes:
        return _line(self)

    @classmethod
    def decode(cls, line: bytes) -> Hello:
        return cls(int(json.loads(line)["pid"]))
