"""edge_server/v2/shared_memory.py: ownership checks and a corrupt state file, with real
files in a temporary folder standing in for /dev/shm."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from edge_server.errors import AccessDenied, RegionNotFound
from edge_server.v2.shared_memory import SharedMemoryRegistry
from edge_server.v2.shared_memory_apps import Owner

A = Owner("a" * 64, os.getuid(), "a")
B = Owner("b" * 64, os.getuid(), "b")


@pytest.fixture
def registry(tmp_path: Path) -> SharedMemoryRegistry:
    (tmp_path / "shm").mkdir()
    made = SharedMemoryRegistry(8, shm_dir=tmp_path / "shm")
    made.attach(tmp_path / "shm" / "edge-gateway-127.0.0.1-1.shm-regions.json", fresh=True)
    return made


def test_a_corrupt_state_starts_over_empty(
    registry: SharedMemoryRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "shm" / "cam").write_bytes(bytes(16))
    registry.register("cam", "/cam", 0, 16, A)
    state = tmp_path / "shm" / "edge-gateway-127.0.0.1-1.shm-regions.json"
    for broken in ("{not json", "[]", '{"cam": {"name": "cam"}}', "\xff"):
        state.write_text(broken, encoding="latin-1")
        with caplog.at_level(logging.ERROR):
            assert registry.status("", A) == []
        assert "is corrupt" in caplog.text
        assert json.loads(state.read_text()) == {}
        caplog.clear()
    with pytest.raises(RegionNotFound):
        registry.read("cam", 0, 8, "input", A)


def test_regions_serve_only_their_credential(
    registry: SharedMemoryRegistry, tmp_path: Path
) -> None:
    (tmp_path / "shm" / "cam").write_bytes(b"0123456789abcdef")
    registry.register("cam", "/cam", 0, 16, A)
    assert registry.read("cam", 0, 4, "input", A) == b"0123"
    with pytest.raises(AccessDenied):
        registry.read("cam", 0, 4, "input", B)
    with pytest.raises(AccessDenied):
        registry.write("cam", 0, 4, b"xxxx", "output", B)
    with pytest.raises(AccessDenied):
        registry.unregister("cam", B)
    assert registry.status("", B) == []
    assert (tmp_path / "shm" / "cam").read_bytes() == b"0123456789abcdef"


def test_objects_outside_the_folder_or_of_another_uid_are_refused(
    registry: SharedMemoryRegistry, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").write_bytes(bytes(16))
    (tmp_path / "shm" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AccessDenied, match="outside"):
        registry.register("x", "/link", 0, 16, A)
    (tmp_path / "shm" / "cam").write_bytes(bytes(16))
    other = Owner("c" * 64, os.getuid() + 1, "c")
    with pytest.raises(AccessDenied, match=f"bound to uid {os.getuid() + 1}"):
        registry.register("x", "/cam", 0, 16, other)
    for own in (
        "edge-gateway-127.0.0.1-1.shm-regions.json",
        ".edge-gateway-h-2.shm-regions.json.1.tmp",
    ):
        with pytest.raises(AccessDenied, match="gateway's own file"):
            registry.register("x", f"/{own}", 0, 2, A)
