"""Credential checks of concurrent calls, answered together.

After an assign, 10,000 gateways report their new version within a second or two, and
each ReportStatus (like every call but Enroll) first checks its gateway secret. One
query, one session and one thread hop per call was a sixth of an orchestrator's time in
that burst (py-spy, two replicas on PostgreSQL). Here the calls that arrive while a check
is running wait for the next one, which looks all of their digests up in one query in
one thread of its own: a lone call is still checked at once, and a burst costs a query
per batch.

Every call's check is a read that starts after the call arrived, as before: a gateway
revoked before its call is refused by that call, on every replica, with no cache to
expire.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from cloud_orchestrator.fleet.identity import (
    Identities,
    IdentityInfo,
    admitted_as,
    secret_digest,
)

__all__ = ["CredentialChecks"]

MAX_BATCH = 500  # digests in one query (an IN list the database plans quickly)


class CredentialChecks:
    """One per orchestrator process, used from its event loop."""

    def __init__(self, identities: Identities, max_batch: int = MAX_BATCH) -> None:
        self._identities = identities
        self._max_batch = max_batch
        # Its own thread: behind the default pool's queue a check would wait for
        # unrelated work, and every call waits for its check.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="credentials")
        self._waiting: list[tuple[str, asyncio.Future[IdentityInfo | None]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.queries = 0  # lookups made (fewer than checks under load)

    async def authorize(self, secret: str, gateway_id: str | None) -> IdentityInfo:
        """The admitted identity ``secret`` belongs to, which must be ``gateway_id`` when
        given (``admitted_as``); looked up with the other calls checking meanwhile."""
        loop = asyncio.get_running_loop()
        found: asyncio.Future[IdentityInfo | None] = loop.create_future()
        self._waiting.append((secret_digest(secret), found))
        if self._worker is None:
            self._worker = loop.create_task(self._drain())
        return admitted_as(await found, gateway_id)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                digests = [digest for digest, _ in batch]
                self.queries += 1
                try:
                    found = await loop.run_in_executor(
                        self._thread, self._identities.lookup, digests
                    )
                except Exception as exc:  # the database is away: every call of it says so
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                for digest, waiter in batch:
                    if not waiter.done():  # a caller cancelled meanwhile
                        waiter.set_result(found.get(digest))
        finally:
            self._worker = None
