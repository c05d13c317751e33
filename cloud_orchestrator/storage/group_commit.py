"""Group commit: many small writes from many calls, one transaction per group.

Ten thousand gateways report status and send result batches; one transaction each is
what saturated the orchestrator (SQLite has one writer, and a commit costs far more
than the rows in it): ReportStatus calls queued past their deadlines and gateways
retried, which made the queue longer. Here every write is a function of a session;
one worker takes whatever has queued while the previous group was committing (up to
``max_group``) and runs it in one transaction in a thread, so the group grows with the
load and a quiet orchestrator still commits a lone write at once.

Writes to rows other writes share (gateways' daily usage, last-seen and models, result
batches) are merged and applied at the end of the group, one statement per table in key
order (storage/merged.py), so two replicas' groups neither hold each other's locks long
nor take them in opposite orders, and a batch another replica stored a moment ago is
skipped instead of failing the group. A group the database aborts as a deadlock victim
(or cannot serialize) runs again whole, after a short random pause, a few times at most.
If anything else in a group fails (a gateway that is unknown, a quota reached, a lost
connection), the group is rolled back and each write runs again in its own transaction:
one bad write never takes the others with it, and no write is half applied.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cloud_orchestrator.errors import LimitReached
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.merged import Later, finish_group, open_group, resolve, run_merged

__all__ = ["GroupCommit"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRIES = 3  # a deadlock victim's group runs again at most this often
RETRY_PAUSE = 0.05  # seconds before the first retry; doubled each time, with jitter
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
        self.retried = 0  # groups (or lone writes) run again after a deadlock
        self.split = 0  # groups that failed and ran write by write
        self._last_split = ""
        self._noted_at = 0.0
        self._noted = (0, 0)
        self._slowest = (0.0, 0)

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
            return await asyncio.to_thread(self._retrying, functools.partial(self._alone, write))
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

    async def run_later(self, write: Callable[[Session], Later[T]]) -> T:
        """``run`` for a write whose result is known after its group's merged updates
        (storage/merged.py)."""
        result: T = await self.run(write)  # type: ignore[arg-type]  # resolved by the group
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
        began = time.monotonic()
        try:
            return self._commit_group(writes)
        finally:
            self._note(len(writes), time.monotonic() - began)

    def _commit_group(self, writes: list[Write]) -> list[tuple[bool, Any]]:
        if len(writes) > 1:
            try:
                results = self._retrying(lambda: self._group(writes))
                return [(True, result) for result in results]
            except Exception as err:  # found again below, write by write
                self.split += 1
                self._last_split = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        outcomes: list[tuple[bool, Any]] = []
        for write in writes:
            try:
                outcomes.append((True, self._retrying(functools.partial(self._alone, write))))
            except Exception as err:  # handed to the caller that sent it
                outcomes.append((False, err))
        return outcomes

    def _group(self, writes: list[Write]) -> list[Any]:
        # No autoflush: the group's rows are flushed once, at its commit, in batches (a
        # flush before each lookup cost more than the rows).
        with self._db.session() as session, session.no_autoflush:
            open_group(session)
            results = [write(session) for write in writes]
            finish_group(session)  # shared rows last, in key order (storage/merged.py)
            return [resolve(result) for result in results]

    def _alone(self, write: Callable[[Session], T]) -> T:
        with self._db.session() as session:
            result: T = run_merged(session, write)
        return result

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """``attempt`` again, after a short random pause, when the database chose it as a
        deadlock victim or could not serialize it (another replica's transaction took the
        same rows): the whole group again, not write by write, a few times at most."""
        for retry in range(RETRIES + 1):
            try:
                return attempt()
            except DBAPIError as err:
                if retry == RETRIES or not _transient(err):
                    raise
                self.retried += 1
                time.sleep(random.uniform(0.5, 1.0) * RETRY_PAUSE * 2**retry)
        raise AssertionError("unreachable: the last retry raises")

    def _note(self, size: int, seconds: float) -> None:
        """One line every 10 s at most, when groups were retried, split or slow: where the
        write path's time goes on a busy database."""
        self._slowest = max(self._slowest, (seconds, size))
        now = time.monotonic()
        noted = (self.retried, self.split)
        if now - self._noted_at < 10.0 or (noted == self._noted and self._slowest[0] < 1.0):
            return
        logger.info(
            "group commit: %d groups, %d writes; retried after a deadlock %d, ran write by "
            "write %d (last: %s); slowest %.2f s for %d writes",
            self.groups,
            self.writes,
            self.retried,
            self.split,
            self._last_split or "-",
            *self._slowest,
        )
        self._noted_at, self._noted, self._slowest = now, noted, (0.0, 0)


def _transient(err: DBAPIError) -> bool:
    """PostgreSQL's deadlock_detected, serialization_failure and lock_not_available."""
    code = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
    return code in ("40P01", "40001", "55P03")


def _STOP(_session: Session) -> None:  # a sentinel, never called
    raise AssertionError("the stop sentinel is never run")
