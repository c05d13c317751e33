"""Database connection: an embedded SQLite file by default, PostgreSQL by URL.

``postgresql://`` URLs use the psycopg 3 driver. The schema is created on first
use; on PostgreSQL an advisory lock serializes that, so several orchestrator
processes may start at once against one database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from cloud_orchestrator.storage.models import Base
from cloud_orchestrator.storage.url import DB_ENV, DEFAULT_DB_URL, normalize_url, url_from_env

__all__ = ["DB_ENV", "DEFAULT_DB_URL", "Database", "normalize_url", "url_from_env"]

_SCHEMA_LOCK = 0x0ED6E  # pg_advisory_xact_lock key for schema creation


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One engine and session factory per process."""

    def __init__(self, url: str = DEFAULT_DB_URL, create: bool = True) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        options: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
            database = self.url.split("///", 1)[-1]
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            options["pool_pre_ping"] = True
            options["pool_size"] = 5
        self.engine: Engine = create_engine(self.url, **options)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            self.create_schema()

    @property
    def supports_skip_locked(self) -> bool:
        """PostgreSQL claims rows with FOR UPDATE SKIP LOCKED; SQLite is single-process."""
        return self.engine.dialect.name == "postgresql"

    def create_schema(self) -> None:
        with self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK}
                )
            Base.metadata.create_all(connection)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        """The URL without its password, for logs."""
        return self.engine.url.render_as_string(hide_password=True)
