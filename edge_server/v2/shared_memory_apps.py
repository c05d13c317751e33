"""Who may register shared-memory regions: credentials bound to the uid that owns them.

A region names an object in /dev/shm, and the gateway reads inputs from it and writes
outputs into it, so registering one is a privilege: a caller must present either the
management token or an app token from ``--shared-memory-app-tokens FILE``. Each app
token is bound to one uid, and a region is accepted only when its object belongs to
that uid (edge_server/v2/shared_memory.py checks the opened descriptor).

The file holds one app a line, ``<app> <uid or user name> <token>``; ``#`` starts a
comment. It must not be readable by group or others (it holds secrets). The registry
keeps only a token's SHA-256 fingerprint, never the token.

Why a token bound to a uid rather than the peer's credentials (SO_PEERCRED): grpc's
Python server never exposes the peer's socket, see docs/kserve-v2.md.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from edge_server.errors import StartupError

MIN_TOKEN_CHARS = 16
_APP = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: it travels as metadata
FLAG = "--shared-memory-app-tokens"


@dataclass(frozen=True)
class Owner:
    """The credential a call presents: its fingerprint, and the uid its objects belong to.

    ``manages``: the management token, which may see and unregister every region.
    """

    credential: str  # SHA-256 hex of the token
    uid: int
    app: str
    manages: bool = False


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def management_owner(token: str) -> Owner:
    """The management token owns objects of the gateway's own user (an operator's tool)."""
    return Owner(fingerprint(token), os.geteuid(), "management", manages=True)


def load_app_tokens(path: Path) -> dict[str, Owner]:
    """The app tokens in ``path``, by fingerprint; a mistake is a StartupError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StartupError(f"{FLAG} {path}: cannot read it: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StartupError(f"{FLAG} {path}: not a regular file")
        if info.st_mode & 0o077:
            raise StartupError(
                f"{FLAG} {path}: readable by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):o}); it holds secrets: chmod 600 {path}"
            )
        try:
            lines = handle.read().splitlines()
        except UnicodeDecodeError:
            raise StartupError(f"{FLAG} {path}: not UTF-8 text") from None
    owners: dict[str, Owner] = {}
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = f"{FLAG} {path}, line {number}"
        owner = _parse_line(words, where)
        if owner.credential in owners:
            raise StartupError(f"{where}: this token is already given to another app")
        if any(known.app == owner.app for known in owners.values()):
            raise StartupError(f"{where}: app {owner.app!r} is listed twice")
        owners[owner.credential] = owner
    return owners


def _parse_line(words: list[str], where: str) -> Owner:
    if len(words) != 3:
        raise StartupError(f"{where}: expected '<app> <uid or user name> <token>'")
    app, user, token = words
    if not _APP.fullmatch(app):
        raise StartupError(f"{where}: app name {app!r}: use letters, digits, _ . -")
    if not _TOKEN.fullmatch(token) or len(token) < MIN_TOKEN_CHARS:
        raise StartupError(
            f"{where}: the token must be at least {MIN_TOKEN_CHARS} printable characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return Owner(fingerprint(token), _uid(user, where), app)


def _uid(user: str, where: str) -> int:
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise StartupError(f"{where}: no user {user!r} on this machine") from None
