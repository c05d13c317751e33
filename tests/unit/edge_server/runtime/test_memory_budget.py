"""The automatic memory budget from real meminfo and cgroup v2 files in a temporary
folder laid out like /proc and /sys/fs/cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_server.runtime.memory_budget import (
    CEILING_BYTES,
    FALLBACK_BYTES,
    FLOOR_BYTES,
    MIB,
    board_memory_bytes,
    memory_budget_bytes,
)

GIB = 1024 * MIB
MEMINFO = """MemTotal:        8039484 kB
MemFree:          512000 kB
MemAvailable:    4096000 kB
Buffers:          102400 kB
"""


def board(
    tmp_path: Path,
    meminfo: str | None = MEMINFO,
    cgroup: str | None = "0::/system.slice/edge.service\n",
    memory_max: str | None = None,
    root_memory_max: str | None = None,
) -> int:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    folder = root / "system.slice" / "edge.service"
    folder.mkdir(parents=True)
    if meminfo is not None:
        (proc / "meminfo").write_text(meminfo)
    if cgroup is not None:
        (proc / "self" / "cgroup").write_text(cgroup)
    if memory_max is not None:
        (folder / "memory.max").write_text(memory_max)
    if root_memory_max is not None:
        (root / "memory.max").write_text(root_memory_max)
    return board_memory_bytes(proc, root)


def test_memtotal_in_kib_when_no_cgroup_limit(tmp_path: Path) -> None:
    assert board(tmp_path) == 8039484 * 1024


def test_memtotal_need_not_be_the_first_line(tmp_path: Path) -> None:
    reordered = "MemFree:  1 kB\nMemTotal:   2048 kB\n"
    assert board(tmp_path, meminfo=reordered) == 2048 * 1024


def test_an_unlimited_cgroup_leaves_memtotal(tmp_path: Path) -> None:
    assert board(tmp_path, memory_max="max\n") == 8039484 * 1024


def test_a_cgroup_limit_smaller_than_memtotal_wins(tmp_path: Path) -> None:
    assert board(tmp_path, memory_max="536870912\n") == 512 * MIB


def test_a_cgroup_limit_larger_than_memtotal_does_not(tmp_path: Path) -> None:
    assert board(tmp_path, memory_max=str(64 * GIB)) == 8039484 * 1024


def test_the_root_limit_is_read_when_the_own_cgroup_has_none(tmp_path: Path) -> None:
    # A container sees its own cgroup as the root of /sys/fs/cgroup.
    assert board(tmp_path, root_memory_max="268435456") == 256 * MIB
    other = tmp_path / "2"
    other.mkdir()
    assert board(other, cgroup="0::/\n", root_memory_max="268435456") == 256 * MIB


def test_cgroup_v1_lines_are_ignored(tmp_path: Path) -> None:
    v1 = "12:memory:/docker/abc\n1:name=systemd:/docker/abc\n"
    assert board(tmp_path, cgroup=v1, root_memory_max="1048576") == 8039484 * 1024


def test_only_the_cgroup_limit_when_meminfo_is_missing(tmp_path: Path) -> None:
    assert board(tmp_path, meminfo=None, memory_max="1073741824") == GIB


@pytest.mark.parametrize(
    "meminfo",
    ["", "MemFree: 10 kB\n", "MemTotal:\n", "MemTotal: lots kB\n", "\x00\xff garbage"],
)
def test_unreadable_meminfo_without_a_limit_falls_back(tmp_path: Path, meminfo: str) -> None:
    assert board(tmp_path, meminfo=meminfo) == FALLBACK_BYTES


def test_nothing_readable_falls_back(tmp_path: Path) -> None:
    assert board(tmp_path, meminfo=None, cgroup=None) == FALLBACK_BYTES
    assert board_memory_bytes(tmp_path / "absent", tmp_path / "absent") == FALLBACK_BYTES


def test_a_garbage_memory_max_is_ignored(tmp_path: Path) -> None:
    assert board(tmp_path, memory_max="lots\n") == 8039484 * 1024
    other = tmp_path / "2"
    other.mkdir()
    assert board(other, memory_max="", root_memory_max="268435456") == 256 * MIB


def test_a_zero_memtotal_is_treated_as_unknown(tmp_path: Path) -> None:
    assert board(tmp_path, meminfo="MemTotal: 0 kB\n") == FALLBACK_BYTES


def test_the_real_machine_reports_something_plausible() -> None:
    assert 64 * MIB <= board_memory_bytes() <= 64 * 1024 * GIB


def test_a_configured_budget_is_taken_as_it_is() -> None:
    assert memory_budget_bytes(12345, 25, 4, 8 * GIB) == 12345
    assert memory_budget_bytes(10 * CEILING_BYTES, 25, 4, 8 * GIB) == 10 * CEILING_BYTES


def test_the_automatic_budget_is_a_percent_per_worker() -> None:
    assert memory_budget_bytes(0, 25, 1, 8 * GIB) == 2 * GIB
    assert memory_budget_bytes(0, 25, 2, 8 * GIB) == GIB
    assert memory_budget_bytes(0, 50, 4, 8 * GIB) == GIB
    assert memory_budget_bytes(0, 10, 3, 6 * GIB) == 6 * GIB // 10 // 3


def test_zero_workers_count_as_one() -> None:
    assert memory_budget_bytes(0, 25, 0, 4 * GIB) == GIB


def test_the_automatic_budget_is_clamped_at_both_ends() -> None:
    assert memory_budget_bytes(0, 25, 1, 128 * MIB) == FLOOR_BYTES
    assert memory_budget_bytes(0, 1, 16, 8 * GIB) == FLOOR_BYTES
    assert memory_budget_bytes(0, 25, 1, 256 * MIB) == FLOOR_BYTES  # exactly the floor
    assert memory_budget_bytes(0, 90, 1, 64 * GIB) == CEILING_BYTES
    assert memory_budget_bytes(0, 25, 1, 16 * GIB) == CEILING_BYTES  # exactly the ceiling
    assert memory_budget_bytes(0, 25, 1, 16 * GIB + 4 * MIB) == CEILING_BYTES


def test_from_files_to_budget(tmp_path: Path) -> None:
    limited = board(tmp_path, memory_max=str(2 * GIB))
    assert memory_budget_bytes(0, 25, 2, limited) == FLOOR_BYTES * 4
