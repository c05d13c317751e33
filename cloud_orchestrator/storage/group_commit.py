"""Group commit: many small writes from many calls, one transaction per group.

Ten thousand gateways report status and send result batches; one transaction each is
what saturated the orchestrator (SQLite has one writer, and a commit costs far more
than the rows in it): ReportStatus calls queued past their deadlines and gateways
retried, which made the queue longer. Here every write is a function of a session;
one worker takes whatever has queued while the previous group was committing (up to
``max_group``) and runs it in one transaction in a thread, so the group grows with the
load and a quiet orchestrator still commits a lone write at once.

If anything in a group fails (a duplicate batch another replica stored a moment ago,
a gateway that is unknown, a lost connection), the group is rolled back and each
write runs again in its own transaction: one bad write never takes the others with it,
and no write is half applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from cloud_orchestrator.errors import LimitReached
from cloud_orchestrator.storage.db import Database

__all__ = ["GroupCommit"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Session], Any]


@dataclass
class _Pending:
    write: Write
    abandoned: bool = False  # its caller is gone (deadline, cancel): not worth writing
    done: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit:
    """One per orchestrator process; ``start`` on its event loop, ``stop`` drains."""

    def __init__(self, db: Database, max_group: int = 500, max_queued: int = 20_000) -> None:
        self._db = db
        self._max_group = max_group
        self._max_queued = max_queued
        # A thread of its own: behind the default pool's queue (thousands of credential
        # checks in a burst) the one writer every call waits for would starve.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="group-commit")
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self.groups = 0
        self.writes = 0
        self.abandoned = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Commits what is queued, then stops."""
        if self._task is None or self._queue is None:
            return
        self._queue.put_nowait(_Pending(_STOP))
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        self._thread.shutdown(wait=True)

    async def run(self, write: Callable[[Session], T]) -> T:
        """``write(session)`` inside a group's transaction; its result once committed.

        Without ``start`` (tools, tests of the stores) it runs in its own transaction.
        """
        if self._queue is None or self._task is None:
            return await asyncio.to_thread(self._alone, write)
        if self._queue.qsize() >= self._max_queued:
            raise LimitReached(
                f"the orchestrator has {self._queue.qsize()} writes waiting for the database; "
                "retry shortly",
                retry_after_ms=1000,
            )
        pending = _Pending(write)
        self._queue.put_nowait(pending)
        try:
            result: T = await asyncio.shield(pending.done)
        except asyncio.CancelledError:
            # Not yet taken: dropped, so a backlog of calls that timed out (and will be
            # sent again) is not written at the expense of the calls still waiting.
            pending.abandoned = True
            raise
        return result

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            group = [await self._queue.get()]
            while len(group) < self._max_group and not self._queue.empty():
                group.append(self._queue.get_nowait())
            stopping = any(p.write is _STOP for p in group)
            self.abandoned += sum(1 for p in group if p.abandoned)
            group = [p for p in group if p.write is not _STOP and not p.abandoned]
            if group:
                loop = asyncio.get_running_loop()
                writes = [p.write for p in group]
                outcomes = await loop.run_in_executor(self._thread, self._commit, writes)
                for pending, (ok, value) in zip(group, outcomes, strict=True):
                    if pending.done.cancelled():
                        continue
                    if ok:
                        pending.done.set_result(value)
                    else:
                        pending.done.set_exception(value)
            if stopping and self._queue.empty():
                return

    def _commit(self, writes: list[Write]) -> list[tuple[bool, Any]]:
        """In a worker thread: one transaction, or one each when the group fails."""
        self.groups += 1
        self.writes += len(writes)
        if len(writes) > 1:
            try:
                # No autoflush: the group's rows are flushed once, at its commit, in
                # batches (a flush before each lookup cost more than the rows).
                with self._db.session() as session, session.no_autoflush:
                    results = [write(session) for write in writes]
                return [(True, result) for result in results]
            except Exception:  # found again below, write by write
                logger.debug("a group of %d writes failed; one at a time", len(writes))
        outcomes: list[tuple[bool, Any]] = []
        for write in writes:
            try:
                outcomes.append((True, self._alone(write)))
            except Exception as err:  # handed to the caller that sent it
                outcomes.append((False, err))
        return outcomes

    def _alone(self, write: Callable[[Session], T]) -> T:
        with self._db.session() as session:
            return write(session)


def _STOP(_session: Session) -> None:  # a sentinel, never called
    raise AssertionError("the stop sentinel is never run")
