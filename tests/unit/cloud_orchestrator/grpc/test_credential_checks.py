"""Batched credential checks on a real SQLite database: concurrent calls share lookups,
each call still gets its own verdict (admitted, wrong id, unknown, revoked), and a check
started after a revoke sees it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from cloud_orchestrator.errors import CredentialRefused, Unauthenticated
from cloud_orchestrator.fleet.identity import Identities
from cloud_orchestrator.grpc.credential_checks import CredentialChecks
from cloud_orchestrator.storage.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'orchestrator.db'}")
    yield database
    database.dispose()


def enrolled(identities: Identities, count: int) -> dict[str, str]:
    token = identities.create_token(auto_admit=True).token
    return {
        f"gw-{i}": identities.enroll(identities.grant(token), f"gw-{i}").secret
        for i in range(count)
    }


def identity_queries(db: Database) -> list[str]:
    seen: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "gateway_identities" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    return seen


def test_concurrent_calls_share_lookups_and_each_gets_its_own_identity(db: Database) -> None:
    identities = Identities(db)
    secrets = enrolled(identities, 60)
    queries = identity_queries(db)

    async def main() -> list[str]:
        checks = CredentialChecks(identities)
        infos = await asyncio.gather(
            *(checks.authorize(secret, gateway) for gateway, secret in secrets.items())
        )
        return [info.gateway_id for info in infos]

    assert asyncio.run(main()) == list(secrets)
    # The first call is looked up alone, the 59 that queued meanwhile together.
    assert 1 <= len(queries) <= 3


def test_each_call_in_a_batch_gets_its_own_refusal(db: Database) -> None:
    identities = Identities(db)
    secrets = enrolled(identities, 3)
    identities.revoke("gw-2")

    async def main() -> list[object]:
        checks = CredentialChecks(identities)
        return await asyncio.gather(
            checks.authorize(secrets["gw-0"], "gw-0"),
            checks.authorize(secrets["gw-0"], "gw-1"),  # another gateway's id
            checks.authorize("edge-gw-not-issued-here", None),
            checks.authorize(secrets["gw-2"], "gw-2"),  # revoked
            checks.authorize(secrets["gw-1"], None),  # whichever gateway it is
            return_exceptions=True,
        )

    ok, wrong_id, unknown, revoked, any_id = asyncio.run(main())
    assert getattr(ok, "gateway_id", None) == "gw-0"
    assert isinstance(wrong_id, CredentialRefused) and "belongs to gateway gw-0" in str(wrong_id)
    assert isinstance(unknown, Unauthenticated)
    assert isinstance(revoked, CredentialRefused) and "revoked" in str(revoked)
    assert getattr(any_id, "gateway_id", None) == "gw-1"


def test_a_check_after_a_revoke_refuses_with_no_cache_to_expire(db: Database) -> None:
    identities = Identities(db)
    secrets = enrolled(identities, 1)

    async def main() -> None:
        checks = CredentialChecks(identities)
        assert (await checks.authorize(secrets["gw-0"], "gw-0")).gateway_id == "gw-0"
        await asyncio.to_thread(identities.revoke, "gw-0")
        with pytest.raises(CredentialRefused, match="revoked"):
            await checks.authorize(secrets["gw-0"], "gw-0")

    asyncio.run(main())


def test_a_database_failure_reaches_every_caller_and_checks_go_on(
    db: Database, tmp_path: Path
) -> None:
    identities = Identities(db)
    secrets = enrolled(identities, 2)
    stored, aside = tmp_path / "orchestrator.db", tmp_path / "aside.db"

    async def main() -> None:
        checks = CredentialChecks(identities)
        db.engine.dispose()
        stored.rename(aside)  # the next connection opens an empty database: no tables
        outcomes = await asyncio.gather(
            *(checks.authorize(s, g) for g, s in secrets.items()), return_exceptions=True
        )
        assert all(isinstance(o, OperationalError) for o in outcomes), outcomes
        db.engine.dispose()
        aside.replace(stored)
        assert (await checks.authorize(secrets["gw-1"], "gw-1")).gateway_id == "gw-1"

    asyncio.run(main())
