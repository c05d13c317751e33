"""AdmittedSet.admitted_now: exact (a read that started after the call arrived decides)
and shared (one read serves every call that arrives while it runs), on a real SQLite
database."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from cloud_orchestrator.fleet.identity import Identities, secret_digest
from cloud_orchestrator.grpc.auth import AdmittedSet
from cloud_orchestrator.storage.db import Database


def enrolled(tmp_path: Path, count: int) -> tuple[Identities, dict[str, str]]:
    identities = Identities(Database(f"sqlite:///{tmp_path / 'o.db'}"))
    token = identities.create_token(auto_admit=True).token
    secrets = {}
    for i in range(count):
        grant = identities.grant(token)
        secrets[f"gw-{i}"] = identities.enroll(grant, f"gw-{i}").secret
    return identities, secrets


async def warm(admitted: AdmittedSet, gateway_id: str, digest: str) -> None:
    for _ in range(200):  # the first call starts the background read of the pairs
        if await admitted.admitted_now(gateway_id, digest) is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the admitted pairs were never read")


async def test_a_revoke_is_seen_by_the_next_call(tmp_path: Path) -> None:
    identities, secrets = enrolled(tmp_path, 2)
    admitted = AdmittedSet(identities, max_age=0.0)
    digest = secret_digest(secrets["gw-0"])
    await warm(admitted, "gw-0", digest)
    assert await admitted.admitted_now("gw-0", digest) is True
    assert await admitted.admitted_now("gw-0", secret_digest(secrets["gw-1"])) is False
    identities.revoke("gw-0")
    # The pairs in hand are older than the revoke: not an answer, the database decides.
    assert await admitted.admitted_now("gw-0", digest) is None
    await warm(admitted, "gw-0", digest)
    assert await admitted.admitted_now("gw-0", digest) is False


async def test_calls_arriving_together_share_one_read(tmp_path: Path) -> None:
    identities, secrets = enrolled(tmp_path, 20)
    admitted = AdmittedSet(identities, max_age=0.0)
    await warm(admitted, "gw-0", secret_digest(secrets["gw-0"]))
    before = admitted.probes
    answers = await asyncio.gather(
        *(
            admitted.admitted_now(gid, secret_digest(s))
            for gid, s in secrets.items()
            for _ in range(10)
        )
    )
    assert answers == [True] * 200
    assert admitted.probes - before <= 2  # one read, or one more for calls after its start


def test_a_call_finding_a_finished_read_before_its_callback_ran_does_not_spin(
    tmp_path: Path,
) -> None:
    """A read finished but not yet cleared (its done-callback is queued behind this call):
    awaiting it does not yield, so a loop on it would hold the event loop for ever (seen:
    every Subscribe of a 10,000-gateway fleet stuck). Run in a thread, bounded."""
    identities, secrets = enrolled(tmp_path, 1)
    digest = secret_digest(secrets["gw-0"])

    async def scenario() -> bool | None:
        admitted = AdmittedSet(identities, max_age=0.0)
        await warm(admitted, "gw-0", digest)
        finished: asyncio.Future[tuple[float, int]] = asyncio.get_running_loop().create_future()
        finished.set_result(identities.fingerprint())
        admitted._probe, admitted._probe_started = finished, float("-inf")
        return await admitted.admitted_now("gw-0", digest)

    outcome: list[bool | None] = []
    worker = threading.Thread(target=lambda: outcome.append(asyncio.run(scenario())), daemon=True)
    worker.start()
    worker.join(10)
    assert outcome == [True], "admitted_now did not return"
