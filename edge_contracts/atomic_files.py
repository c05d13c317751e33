"""Crash-safe file operations: write to a temporary file, fsync, rename, fsync the folder.

A power cut at any moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

# Modes before the umask: tempfile's fixed 0600/0700 would make every published file
# private; state only this process reads keeps the private defaults.
PUBLIC_FILE = 0o666
PUBLIC_DIR = 0o777


def fsync_dir(folder: Path) -> None:
    """Persist a rename/creation inside ``folder`` (POSIX needs the directory fsynced)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(beside: Path) -> Path:
    return beside.with_name(f".{beside.name}.{secrets.token_hex(6)}.tmp")


def create_temp_file(beside: Path, mode: int = 0o600) -> tuple[int, Path]:
    """A new, uniquely named file next to ``beside``, open for writing, with ``mode``
    minus the umask (pass PUBLIC_FILE for files other users may read)."""
    while True:
        temp = _temp_name(beside)
        with contextlib.suppress(FileExistsError):
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode), temp


def create_temp_dir(beside: Path, mode: int = 0o700) -> Path:
    """A new, uniquely named folder next to ``beside``, with ``mode`` minus the umask."""
    while True:
        temp = _temp_name(beside)
        with contextlib.suppress(FileExistsError):
            os.mkdir(temp, mode)
            return temp


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``; the file gets ``mode`` minus the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = create_temp_file(path, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: Path, document: Any) -> None:
    write_bytes_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder below ``folder`` (before it is renamed into place)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


def rename_dir_atomic(source: Path, target: Path) -> None:
    """Move a completed folder into place; ``target`` must not exist yet."""
    fsync_tree(source)
    os.rename(source, target)
    fsync_dir(target.parent)


def remove_tree(folder: Path) -> None:
    """Delete a folder by first renaming it aside, so a crash never leaves half of it."""
    if not folder.exists():
        return
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
    os.rename(folder, trash)
    fsync_dir(folder.parent)
    shutil.rmtree(trash, ignore_errors=True)
