"""Updates of shared rows, merged within a group commit and applied at its end in key order.

A group commit (storage/group_commit.py) runs hundreds of writes in one transaction. A
write that changes a row other writes change too (a gateway's daily usage counter: each
of its status reports and result batches adds to it) would lock that row at once and hold
the lock until the group commits, while the rest of the group runs; another replica's
group wanting the same rows in another order waits for it, or deadlocks. So such a write
only records its change here; the group sums the changes per row and applies one
statement per distinct row just before its commit, rows in sorted order, every replica in
the same order: the locks are taken last, held for the commit alone, and cannot cross.

Outside a group commit's session (a command-line tool, a test of a store), ``merged``
returns None and the caller writes at once, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

__all__ = [
    "GROUP_KEY",
    "Later",
    "Merged",
    "apply_merged",
    "finish_group",
    "merged",
    "open_group",
    "resolve",
    "run_merged",
]

GROUP_KEY = "merged_updates"  # session.info key: present only in a group commit's session


class Merged(Protocol):
    def apply(self, session: Session) -> None:
        """Write the merged changes, rows in sorted key order; raise to fail the group."""
        ...


M = TypeVar("M", bound=Merged)
T = TypeVar("T")


class Later(Generic[T]):
    """A write's result that is known only once its group's merged updates are applied
    (whether a batch was new: its insert is one of the group's)."""

    def __init__(self, get: Callable[[], T]) -> None:
        self._get = get

    def result(self) -> T:
        return self._get()


def resolve(value: Any) -> Any:
    """A write's result, its ``Later`` read after ``finish_group``."""
    return value.result() if isinstance(value, Later) else value


def open_group(session: Session) -> None:
    """Mark ``session`` as a group commit's: merged updates wait for ``apply_merged``."""
    session.info[GROUP_KEY] = {}


def merged(session: Session, kind: str, factory: Callable[[], M]) -> M | None:
    """The group's pending updates of ``kind`` (made on first use), or None when
    ``session`` is not a group commit's."""
    pending: dict[str, Merged] | None = session.info.get(GROUP_KEY)
    if pending is None:
        return None
    found = pending.get(kind)
    if found is None:
        found = pending[kind] = factory()
    return found  # type: ignore[return-value]  # one factory per kind


def finish_group(session: Session) -> None:
    """The rows the writes added through the ORM (a new gateway that merged rows refer
    to), then the merged updates."""
    session.flush()
    apply_merged(session)


def run_merged(session: Session, write: Callable[[Session], Any]) -> Any:
    """One write as a group of its own in ``session``'s transaction; its result."""
    open_group(session)
    result = write(session)
    finish_group(session)
    return resolve(result)


def apply_merged(session: Session) -> None:
    """Every kind's updates, kinds in name order (the same on every replica)."""
    pending: dict[str, Merged] = session.info.pop(GROUP_KEY, None) or {}
    for kind in sorted(pending):
        pending[kind].apply(session)
