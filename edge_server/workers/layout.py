"""How many gateway processes ``--workers 0`` (the default) starts: cores and memory.

Measured on 2 cores (benchmarks/http_face, `make bench`): a process per core is the
fast layout for every kind of model. A tiny model is bound by Python's per-call work
(gRPC parsing, the event loop, a GIL per process), so a second process nearly doubles
it; a MobileNet on JPEG photos is bound by decode + resize + ``session.run``, which a
process per core with one decode and one inference thread each keeps as busy as one
process with two of each, minus nothing the GIL takes. So the default is one process
per core, as long as the board holds that many copies of the models: each process
loads every model itself. Otherwise fewer, down to one. Pull mode (``--orchestrator``)
runs in the primary alone for now, so it keeps one process.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edge_server.runtime.memory_budget import MIB, board_memory_bytes
from edge_server.settings import Settings
from edge_server.settings.fields import default_cpu_count

logger = logging.getLogger(__name__)

# One gateway process with no model: Python, grpcio, ONNX Runtime, Pillow, numpy
# (about 90 MB measured by benchmarks/footprint), rounded up for the request buffers.
PROCESS_BASE_BYTES = 128 * MIB
# A loaded ONNX Runtime session holds the weights, the optimized graph and its arenas:
# about 4x the file for the CNNs measured (MobileNetV2 INT8 3.5 MB -> ~14 MB of RSS).
SESSION_BYTES_PER_FILE_BYTE = 4
# The share of the board the gateway's model copies may take; the rest is the request
# memory budget's, the OS's and the apps' on the board.
BOARD_SHARE_PERCENT = 50


def model_bytes(model_root: Path) -> int:
    """The ONNX files a process loads: per model, its largest version (a hot swap holds
    two for a moment; the budget's headroom covers that)."""
    total = 0
    if not model_root.is_dir():
        return 0
    for model in model_root.iterdir():
        sizes = [f.stat().st_size for f in model.glob("*/model.onnx") if f.is_file()]
        total += max(sizes, default=0)
    return total


def process_bytes(models: int) -> int:
    """The estimated RSS of one gateway process that loads ``models`` bytes of ONNX."""
    return PROCESS_BASE_BYTES + SESSION_BYTES_PER_FILE_BYTE * models


def auto_workers(cores: int, board: int, models: int, pull_mode: bool) -> int:
    """One process per core, as many as fit in the board's share for model copies."""
    if pull_mode:
        return 1
    fit = board * BOARD_SHARE_PERCENT // 100 // process_bytes(models)
    return max(1, min(cores, fit))


def resolve_workers(settings: Settings) -> Settings:
    """``settings`` with ``workers`` fixed: 0 (automatic) becomes a count, logged."""
    if settings.server.workers:
        return settings
    cores, board = default_cpu_count(), board_memory_bytes()
    models = model_bytes(Path(settings.server.model_root))
    count = auto_workers(cores, board, models, bool(settings.cloud.orchestrator))
    logger.info(
        "workers: %d (automatic: %d cores, %d MiB of memory, ~%d MiB per process for "
        "%.1f MiB of models%s)",
        count,
        cores,
        board // MIB,
        process_bytes(models) // MIB,
        models / MIB,
        "; pull mode runs in one process" if settings.cloud.orchestrator else "",
    )
    return settings.replace(workers=count)
