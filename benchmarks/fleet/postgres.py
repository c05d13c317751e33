"""A throwaway PostgreSQL cluster on a free port: the fleet benchmark's and the tests'
(tests/support/orchestrator.py uses this one; benchmarks do not import tests)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

__all__ = ["ThrowawayPostgres", "database_bytes", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (`make postgres-server` installs it)")


class ThrowawayPostgres:
    """initdb + pg_ctl on a free port in a temp folder, as the postgres user when root."""

    def __init__(self, max_connections: int = 300, prefix: str = "edge-fleet-pg-") -> None:
        self.bin = _pg_bin()
        self.folder = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.folder / "data"
        self.port = free_port()
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -k {self.folder} -h 127.0.0.1 -F -c max_connections={max_connections}"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_postgres, *command], check=True, capture_output=True, timeout=120)

    def fresh_database(self) -> str:
        import psycopg

        name = f"fleet_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def database_bytes(db_url: str) -> int:
    """Size of the orchestrator database: the SQLite file (+ WAL), or pg_database_size."""
    if db_url.startswith("sqlite:///"):
        path = Path(db_url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    import psycopg

    with psycopg.connect(db_url) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


def gateways_with_event(db_url: str, model: str, version: str, kind: str, since: float) -> int:
    """Distinct gateways with a ``kind`` event for ``model`` ``version`` received since
    ``since`` (epoch seconds): what the orchestrators stored, read from the database."""
    import psycopg

    with psycopg.connect(db_url) as connection:
        row = connection.execute(
            "SELECT count(DISTINCT gateway_id) FROM gateway_events WHERE model_name = %s"
            " AND model_version = %s AND kind = %s AND received_at >= %s",
            (model, version, kind, since),
        ).fetchone()
    return int(row[0]) if row else 0
