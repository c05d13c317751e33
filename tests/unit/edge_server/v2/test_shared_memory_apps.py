"""edge_server/v2/shared_memory_apps.py: the --shared-memory-app-tokens file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge_server.errors import StartupError
from edge_server.v2.shared_memory_apps import fingerprint, load_app_tokens, management_owner

TOKEN = "camera-token-0123456789"


def tokens_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "shm-apps"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_apps_by_fingerprint_with_uid_or_user_name(tmp_path: Path) -> None:
    path = tokens_file(
        tmp_path,
        f"# app uid token\ncamera 1001 {TOKEN}  # the camera pipeline\n\nlogger root {TOKEN}x\n",
    )
    owners = load_app_tokens(path)
    camera, logger = owners[fingerprint(TOKEN)], owners[fingerprint(TOKEN + "x")]
    assert (camera.app, camera.uid, camera.manages) == ("camera", 1001, False)
    assert (logger.app, logger.uid) == ("logger", 0)
    assert TOKEN not in repr(owners)  # only fingerprints are kept


@pytest.mark.parametrize(
    "text, mode, message",
    [
        (f"camera 1001 {TOKEN}\n", 0o640, "readable by group or others"),
        ("camera 1001\n", 0o600, "expected '<app> <uid or user name> <token>'"),
        ("camera 1001 short\n", 0o600, "at least 16 printable characters"),
        (f"camera no-such-user-here {TOKEN}\n", 0o600, "no user 'no-such-user-here'"),
        (f"cam/era 1001 {TOKEN}\n", 0o600, "app name 'cam/era'"),
        (f"a 1 {TOKEN}\nb 2 {TOKEN}\n", 0o600, "line 2: this token is already given"),
        (f"a 1 {TOKEN}\na 2 {TOKEN}x\n", 0o600, "line 2: app 'a' is listed twice"),
    ],
)
def test_mistakes_stop_the_start(tmp_path: Path, text: str, mode: int, message: str) -> None:
    with pytest.raises(StartupError) as refused:
        load_app_tokens(tokens_file(tmp_path, text, mode))
    assert message in str(refused.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot read it"):
        load_app_tokens(tmp_path / "nope")


def test_the_management_token_owns_the_gateways_user_objects() -> None:
    owner = management_owner("management-token-0123")
    assert (owner.uid, owner.manages) == (os.geteuid(), True)
    assert owner.credential == fingerprint("management-token-0123")
