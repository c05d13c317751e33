"""Files that ``edge-orchestrator`` options name (tokens, CA certificates), checked with
the gateway's own rules (edge_contracts/cli/), so a mistake reads the same on
both sides: one line naming the option, the file and what to do."""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_ca_file", "read_token_file"]


def read_token_file(option: str, path: Path) -> str:
    """The token in ``path``; ValueError when it is missing, unreadable, not text or empty
    (an empty token would silently turn authentication off)."""
    from edge_contracts.cli.user_files import check_token_file, read_user_file

    check_token_file(option, path)
    return read_user_file(option, path).decode("utf-8").strip()


def read_ca_file(option: str, path: Path) -> str:
    """The PEM text of ``path``; ValueError unless it holds at least one certificate."""
    from edge_contracts.cli.tls_files import load_certificates
    from edge_contracts.cli.user_files import read_user_file

    load_certificates(option, path)
    return read_user_file(option, path).decode("ascii")
