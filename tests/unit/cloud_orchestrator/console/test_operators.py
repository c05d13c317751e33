"""Operators and their sessions on a real SQLite database: only digests are stored,
roles, session expiry, removal ends sessions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_orchestrator.console.operators import Operators, same_secret
from cloud_orchestrator.errors import Conflict, InvalidRequest, NotFound
from cloud_orchestrator.storage.db import Database


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "o.db"


@pytest.fixture
def operators(path: Path) -> Iterator[Operators]:
    db = Database(f"sqlite:///{path}")
    try:
        yield Operators(db)
    finally:
        db.dispose()


def test_tokens_and_sessions_are_stored_as_digests_only(operators: Operators, path: Path) -> None:
    token = operators.add("alice", "admin")
    assert token.startswith("eop_") and len(token) > 40
    opened = operators.open_session(token)
    assert opened is not None
    session_id, principal = opened
    assert principal.name == "alice" and principal.is_admin and principal.csrf_token
    with sqlite3.connect(path) as raw:
        dump = "\n".join(raw.iterdump())
    assert token not in dump and session_id not in dump
    assert operators.by_token(token) == principal.__class__("alice", "admin")
    again = operators.by_session(session_id)
    assert again is not None and again.csrf_token == principal.csrf_token


def test_unknown_tokens_and_expired_sessions(operators: Operators) -> None:
    assert operators.by_token("eop_nope") is None
    assert operators.by_token("not even the prefix") is None
    assert operators.open_session("eop_nope") is None
    short = Operators(operators.db, session_seconds=-1)
    token = short.add("bob", "read-only")
    opened = short.open_session(token)
    assert opened is not None and short.by_session(opened[0]) is None


def test_removal_ends_sessions_and_names_are_checked(operators: Operators) -> None:
    token = operators.add("carol", "read-only")
    opened = operators.open_session(token)
    assert opened is not None and not opened[1].is_admin
    with pytest.raises(Conflict, match="exists"):
        operators.add("carol", "admin")
    operators.remove("carol")
    assert operators.by_session(opened[0]) is None and operators.by_token(token) is None
    with pytest.raises(NotFound):
        operators.remove("carol")
    with pytest.raises(InvalidRequest, match="name"):
        operators.add("two words", "admin")
    with pytest.raises(InvalidRequest, match="role"):
        operators.add("dave", "root")


def test_same_secret() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abd") and not same_secret("", "")
