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

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from cloud_orchestrator.storage import access_models  # noqa: F401  # its tables join Base.metadata
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
            # The default executor (6 threads on 2 cores), the group commit, the change
            # listener and the rollout runner at once: fewer pooled connections made each
            # extra checkout open and close a PostgreSQL backend (seen in fleet runs).
            options["pool_size"] = 10
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
            _add_missing_columns(connection)

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


def _add_missing_columns(connection: Connection) -> None:
    """Additive schema changes: ``create_all`` makes missing tables but never alters an
    existing one, so a column added to a model since the database was made is added here
    (each such column has a ``server_default``, so existing rows get a value)."""
    inspector = inspect(connection)
    for table in Base.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if column.server_default is None and not column.nullable:
                raise RuntimeError(
                    f"column {table.name}.{column.name} is new but has no server_default"
                )
            kind = column.type.compile(dialect=connection.dialect)
            default = ""
            if column.server_default is not None:
                default = f" DEFAULT {column.server_default.arg}"  # type: ignore[attr-defined]
            connection.execute(
                text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}")
            )
