"""Reading the files an operator points our commands at (config, keys, tokens, TLS).

A mistake here is the operator's, not the program's: every failure is a ValueError
whose message names the flag, the path and what is wrong, in one line.
"""

from __future__ import annotations

from pathlib import Path

MAX_USER_FILE_BYTES = 1 << 20  # config, token, key and certificate files are small


def read_user_file(flag: str, path: Path, limit: int = MAX_USER_FILE_BYTES) -> bytes:
    """The bytes of ``path``; ValueError("<flag> <path>: <problem>") when they cannot be read."""
    try:
        if path.is_dir():
            raise ValueError(f"{flag} {path}: is a folder; give the file itself")
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise ValueError(f"{flag} {path}: no such file") from None
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise ValueError(f"{flag} {path}: over {limit} bytes, too large for this kind of file")
    return data


def check_token_file(flag: str, path: Path) -> None:
    try:
        token = read_user_file(flag, path).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{flag} {path}: not a text file holding a token") from None
    if not token:  # an empty token would leave the calls it guards open to anyone
        raise ValueError(f"{flag} {path}: is empty; write the token into it")
