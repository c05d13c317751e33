"""How many processes --workers 0 starts: one per core while the memory holds the models."""

from __future__ import annotations

from pathlib import Path

from edge_server.runtime.memory_budget import MIB
from edge_server.settings import Settings
from edge_server.workers.layout import (
    auto_workers,
    model_bytes,
    process_bytes,
    resolve_workers,
)

GIB = 1024 * MIB


def test_one_process_per_core_when_the_memory_holds_them() -> None:
    assert auto_workers(cores=4, board=8 * GIB, models=50 * MIB, pull_mode=False) == 4
    assert auto_workers(cores=2, board=24 * GIB, models=0, pull_mode=False) == 2


def test_fewer_processes_when_copies_of_the_models_do_not_fit() -> None:
    # 1 GiB board, half of it for copies; 100 MiB of models -> ~528 MiB per process.
    assert process_bytes(100 * MIB) == 128 * MIB + 400 * MIB
    assert auto_workers(cores=4, board=1 * GIB, models=100 * MIB, pull_mode=False) == 1
    assert auto_workers(cores=4, board=4 * GIB, models=100 * MIB, pull_mode=False) == 3
    # Never below one, even when one copy does not fit the share.
    assert auto_workers(cores=4, board=256 * MIB, models=1 * GIB, pull_mode=False) == 1


def test_pull_mode_keeps_one_process() -> None:
    assert auto_workers(cores=8, board=64 * GIB, models=0, pull_mode=True) == 1


def test_model_bytes_counts_the_largest_version_of_each_model(tmp_path: Path) -> None:
    for model, version, size in (("a", "1", 1000), ("a", "2", 3000), ("b", "7", 500)):
        folder = tmp_path / model / version
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"\0" * size)
    (tmp_path / ".feedback.sqlite3").write_bytes(b"\0" * 10_000)  # not a model
    assert model_bytes(tmp_path) == 3500
    assert model_bytes(tmp_path / "missing") == 0


def test_resolve_keeps_an_explicit_count_and_fixes_automatic(tmp_path: Path) -> None:
    explicit = Settings.from_values(workers=3, model_root=tmp_path)
    assert resolve_workers(explicit) is explicit
    resolved = resolve_workers(Settings.from_values(model_root=tmp_path))
    assert resolved.server.workers >= 1
    pulled = resolve_workers(Settings.from_values(model_root=tmp_path, orchestrator="h:1"))
    assert pulled.server.workers == 1
