"""Argument types for the paths a command will write, checked before any work starts.

A mistake in ``-o`` should not surface as ``File exists`` after a minute of
quantization: the first folder that exists on the way to the target must be a
writable folder, and a file target must not be a folder.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["output_file", "output_folder"]


def _check_parents(path: Path) -> Path:
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(
            f"cannot write {path}: {ancestor} is not a folder; choose another path"
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"cannot write {path}: no permission to create files in {ancestor}"
        )
    return path


def output_file(text: str) -> Path:
    """A file to (over)write: not a folder, inside a folder that is or can be made."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name")
    return _check_parents(path)


def output_folder(text: str) -> Path:
    """A folder to create."""
    return _check_parents(Path(text))
