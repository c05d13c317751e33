"""Database URLs: the default, the environment variable, the driver, and how they are
shown. No SQLAlchemy here, so ``edge-orchestrator --help`` works without the cloud extra."""

from __future__ import annotations

import os
import re

from cloud_orchestrator.errors import InvalidRequest

__all__ = [
    "DB_ENV",
    "DEFAULT_DB_URL",
    "URL_FORMS",
    "check_url",
    "is_postgres",
    "normalize_url",
    "redact_url",
    "url_from_env",
]

DEFAULT_DB_URL = "sqlite:///orchestrator.db"
DB_ENV = "EDGE_ORCHESTRATOR_DB"
URL_FORMS = "sqlite:///FILE or postgresql://USER@HOST:PORT/DB"
_POSTGRES = ("postgres://", "postgresql://", "postgresql+psycopg://")
_PASSWORD = re.compile(r"^([a-z0-9+]+://[^/:@]*):[^/@]*@")


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain PostgreSQL URLs."""
    for prefix in _POSTGRES[:2]:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_postgres(url: str) -> bool:
    return url.startswith(_POSTGRES)


def check_url(url: str) -> None:
    """Refuse URLs of databases the orchestrator does not support, before any driver loads."""
    if not (url.startswith("sqlite:///") or is_postgres(url)):
        raise InvalidRequest(f"unsupported database URL {redact_url(url)}: use {URL_FORMS}")


def redact_url(url: str) -> str:
    """The URL as it may be printed: without its password."""
    return _PASSWORD.sub(r"\1:***@", url)


def url_from_env(explicit: str | None) -> str:
    return explicit or os.environ.get(DB_ENV, "") or DEFAULT_DB_URL
