"""The primary's private folder: this user's only, the sockets named from it, removed by
the primary alone."""

from __future__ import annotations

import stat
from pathlib import Path

from edge_server.workers.private_folder import PrivateFolder


def test_a_fresh_folder_is_this_users_only_and_names_every_socket() -> None:
    folder = PrivateFolder()
    try:
        assert folder.owned and folder.path.is_dir()
        assert stat.S_IMODE(folder.path.stat().st_mode) == 0o700
        assert folder.management_address == f"unix:{folder.path / 'management.sock'}"
        assert folder.http == folder.path / "http.sock"
        assert folder.worker(3) == folder.path / "worker-3.sock"
        # A unix socket path must fit sockaddr_un (108 bytes with its NUL).
        assert len(str(folder.worker(99))) < 108
    finally:
        folder.remove()
    assert not folder.path.exists()


def test_a_replica_given_the_folder_never_removes_it(tmp_path: Path) -> None:
    given = PrivateFolder(tmp_path)
    assert not given.owned
    assert given.worker(1) == tmp_path / "worker-1.sock"
    given.remove()
    assert tmp_path.is_dir()
