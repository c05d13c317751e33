"""How ``edge-orchestrator`` reports what stops a command: one line on stderr,
``edge-orchestrator: error: <what is wrong and what to do>``, never a traceback.

Exit status: 2 when the command could not start (bad arguments, the cloud extra is
missing, the database cannot be opened), 1 when it ran and failed.
"""

from __future__ import annotations

import importlib
import sys

from cloud_orchestrator.storage.url import is_postgres

__all__ = [
    "CLOUD_EXTRA",
    "missing_cloud_module",
    "one_line",
    "report",
]

PROG = "edge-orchestrator"
CLOUD_EXTRA = "pip install 'edge-inference-gateway[cloud]'"


def report(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def one_line(exc: BaseException) -> str:
    """An exception as one readable line: a driver's own first line rather than
    SQLAlchemy's wrapper (statement, parameters, background link), an OSError's
    reason and file rather than its errno."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, OSError) and cause.strerror:
        return f"{cause.filename}: {cause.strerror}" if cause.filename else cause.strerror
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def missing_cloud_module(db_url: str) -> str:
    """The first module of the cloud extra this command needs that does not import, or ""."""
    needed = ["sqlalchemy", "tqdm"] + (["psycopg"] if is_postgres(db_url) else [])
    for name in needed:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # not installed, or a broken install (psycopg without libpq)
            return exc.name or name
    return ""
