"""Which artifact store an orchestrator uses: ``--artifacts DIR`` (a local folder, the
default and the only choice with SQLite) or ``--artifacts postgresql`` (chunks in the
PostgreSQL database, shared by every replica on it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.registry.artifacts import ArtifactStore, FolderArtifacts
from cloud_orchestrator.storage.url import is_postgres

if TYPE_CHECKING:  # SQLAlchemy: check_artifacts runs before the cloud extra is known
    from cloud_orchestrator.storage.db import Database

__all__ = ["DATABASE_ARTIFACTS", "check_artifacts", "open_artifacts"]

# The --artifacts value that selects the database; a folder of that name is ./postgresql.
DATABASE_ARTIFACTS = "postgresql"


def check_artifacts(db_url: str, spec: Path | str) -> None:
    """Refuse the database store on SQLite before any file is created."""
    if isinstance(spec, str) and spec == DATABASE_ARTIFACTS and not is_postgres(db_url):
        raise InvalidRequest(
            "--artifacts postgresql keeps bundles in the database and needs a PostgreSQL "
            "--db (postgresql://USER@HOST:PORT/DB); with SQLite give a folder: --artifacts DIR"
        )


def open_artifacts(db: Database, spec: Path | str) -> ArtifactStore:
    """The store ``spec`` names; InvalidRequest for the database store on SQLite."""
    if isinstance(spec, str) and spec == DATABASE_ARTIFACTS:
        from cloud_orchestrator.registry.db_artifacts import DatabaseArtifacts

        return DatabaseArtifacts(db)
    return FolderArtifacts(Path(spec))
