"""Operators of the console and its JSON API: a name, a role and a bearer token, and the
browser sessions a token login opens.

Only sha256 digests of tokens and session ids are stored: a copy of the database lets
nobody in. Tokens are 256 random bits, so a plain digest (not a slow password hash) is
enough. Sessions live in the database, so every orchestrator replica behind one
address accepts the same cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete, select

from cloud_orchestrator.errors import Conflict, InvalidRequest, NotFound
from cloud_orchestrator.storage.access_models import Operator, OperatorSession
from cloud_orchestrator.storage.db import Database

__all__ = ["ADMIN", "READ_ONLY", "ROLES", "OperatorInfo", "Operators", "Principal"]

ADMIN = "admin"
READ_ONLY = "read-only"
ROLES = (ADMIN, READ_ONLY)
TOKEN_PREFIX = "eop_"  # recognizable in a leaked log or file
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class OperatorInfo:
    name: str
    role: str
    created_at: float


@dataclass(frozen=True)
class Principal:
    """Who makes a request, and how: ``csrf_token`` is set for cookie sessions (their
    actions must echo it), empty for a bearer token (a script: no ambient credential)."""

    name: str
    role: str
    csrf_token: str = ""
    session_digest: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


class Operators:
    def __init__(self, db: Database, session_seconds: float = 8 * 3600) -> None:
        self.db = db
        self.session_seconds = session_seconds

    # -- the operator list (CLI) -----------------------------------------------------------

    def add(self, name: str, role: str) -> str:
        """A new operator; returns its token, which is shown this once."""
        if not _NAME_RE.fullmatch(name):
            raise InvalidRequest(
                f"operator name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'"
            )
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.session() as session:
            if session.get(Operator, name) is not None:
                raise Conflict(
                    f"operator {name!r} exists; remove it first to issue a new token "
                    f"(`edge-orchestrator operators remove {name}`)"
                )
            session.add(
                Operator(name=name, role=role, token_sha256=digest(token), created_at=time.time())
            )
        return token

    def remove(self, name: str) -> None:
        """Forget an operator and end its sessions at once."""
        with self.db.session() as session:
            row = session.get(Operator, name)
            if row is None:
                raise NotFound(f"no operator named {name!r}")
            session.execute(delete(OperatorSession).where(OperatorSession.operator == name))
            session.delete(row)

    def list(self) -> list[OperatorInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(Operator).order_by(Operator.name)).all()
            return [OperatorInfo(r.name, r.role, r.created_at) for r in rows]

    # -- authentication --------------------------------------------------------------------

    def by_token(self, token: str) -> Principal | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self.db.session() as session:
            row = session.scalars(
                select(Operator).where(Operator.token_sha256 == digest(token))
            ).first()
            return None if row is None else Principal(row.name, row.role)

    def open_session(self, token: str) -> tuple[str, Principal] | None:
        """Log in with a token: the new session id (the cookie) and who it is."""
        principal = self.by_token(token)
        if principal is None:
            return None
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = time.time()
        with self.db.session() as session:
            session.execute(delete(OperatorSession).where(OperatorSession.expires_at < now))
            session.add(
                OperatorSession(
                    id_sha256=digest(session_id),
                    operator=principal.name,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + self.session_seconds,
                )
            )
        return session_id, Principal(principal.name, principal.role, csrf, digest(session_id))

    def by_session(self, session_id: str) -> Principal | None:
        key = digest(session_id)
        with self.db.session() as session:
            row = session.get(OperatorSession, key)
            if row is None or row.expires_at < time.time():
                return None
            operator = session.get(Operator, row.operator)
            if operator is None:
                return None
            return Principal(operator.name, operator.role, row.csrf_token, key)

    def close_session(self, principal: Principal) -> None:
        if not principal.session_digest:
            return
        with self.db.session() as session:
            session.execute(
                delete(OperatorSession).where(OperatorSession.id_sha256 == principal.session_digest)
            )


def same_secret(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
