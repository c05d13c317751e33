"""glibc malloc tuned so that memory freed after a flood goes back to the system.

Image payloads and decoded images are a few MB each. glibc serves them from its heaps
(arenas) once its *dynamic* mmap threshold has grown past their size (it rises to the
largest block freed, up to 32 MiB), and then keeps what was freed: after a flood of 32
12 MB PNGs a gateway stayed at 467 MB instead of its 139 MB baseline. Two fixes are
applied at start (``configure``):

- ``M_MMAP_THRESHOLD`` set explicitly (``MMAP_THRESHOLD_BYTES``, 4 MiB), which also
  turns the dynamic threshold off: every block of 4 MiB or more is its own mapping,
  unmapped when freed; and ``M_TRIM_THRESHOLD`` (8 MiB, twice that, as glibc's dynamic
  setting would pick), which that fix would otherwise freeze at 128 KiB. Both matter
  for speed: with the mmap threshold at 128 KiB, or with it at 4 MiB and the trim
  threshold left at 128 KiB, an image call's buffers were given back and faulted in
  again on every call. MobileNetV2 INT8 on a 512 px JPEG, decode + run in 2 threads in
  process, CPU per image: glibc defaults 6.2-6.5 ms; 128 KiB
  (before) 7.7-7.8; 4 MiB with the trim threshold left alone 7.0-7.2; 4 MiB + 8 MiB
  6.4-6.45 (+ 16 MiB: 6.7-6.8, + 32 MiB: 6.6-6.8, and more RSS kept after a flood).
- ``malloc_trim(0)`` once the bytes reserved by calls in flight fall back to 0 after a
  peak of at least ``TRIM_AFTER_BYTES`` (``Trimmer``, driven by AdmissionControl): it
  returns the free pages of every arena, which smaller blocks leave behind. It runs in
  a background thread, at most once per ``TRIM_INTERVAL_S``, never on the request path.

Measured with a real gateway, 32 concurrent 2000x2000 RGB PNGs (11.5 MB each, budget
out of the way), RSS MB baseline / peak / 6 s after (docs/architecture.md has the table):
glibc defaults 136 / 1085 / 471; mmap threshold 128 KiB only 109 / 1087 / 263; trim
only 116 / 1162 / 112; both 94 / 993 / 95 (kept: the threshold also keeps big blocks out
of the arenas between trims). 12 MB PNGs, with the trim: thresholds 128 KiB (before)
142 / 1248 / 159; 4 MiB + trim threshold 8 MiB (now) 157 / 1210 / 159; 4 MiB + 32 MiB
152 / 1297 / 201. GLIBC_TUNABLES arena_max=2:
110 / 1072 / 622 (fewer arenas return nothing by themselves, so not used).

Where glibc is absent (musl, macOS) nothing is changed: a debug line says so.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
# Fixing the mmap threshold also freezes glibc's trim threshold at its 128 KiB default
# (otherwise it follows the mmap threshold, x2): free() then gave the top of the heap
# back after nearly every image call and the next call faulted it in again.
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES  # what glibc's dynamic setting would pick
TRIM_AFTER_BYTES = 16 * 1024 * 1024
TRIM_INTERVAL_S = 1.0
# Calls refused by the budget hold no reservation but their payloads are still being
# freed when the last admitted call ends: trim a moment later, to return those too.
TRIM_SETTLE_S = 0.5


@dataclass(frozen=True)
class AllocatorSetup:
    glibc: bool
    mmap_threshold: int  # 0 when left unchanged
    trim_threshold: int = 0  # 0 when left unchanged


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def configure(
    mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES
) -> AllocatorSetup:
    """Fix glibc's mmap and trim thresholds; a no-op (debug log) elsewhere."""
    libc = _glibc()
    if libc is None:
        logger.debug("allocator: not glibc, malloc left as it is")
        return AllocatorSetup(False, 0)
    if libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold) != 1:
        logger.warning("allocator: mallopt(M_MMAP_THRESHOLD, %d) refused", mmap_threshold)
        return AllocatorSetup(True, 0)
    if libc.mallopt(M_TRIM_THRESHOLD, trim_threshold) != 1:
        logger.warning("allocator: mallopt(M_TRIM_THRESHOLD, %d) refused", trim_threshold)
        return AllocatorSetup(True, mmap_threshold)
    logger.debug(
        "allocator: glibc mmap threshold %d bytes, trim threshold %d bytes",
        mmap_threshold,
        trim_threshold,
    )
    return AllocatorSetup(True, mmap_threshold, trim_threshold)


def trim() -> bool:
    """Give the free pages of every glibc arena back to the system."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


class Trimmer:
    """``drained(peak)`` after calls in flight released everything: trim in the
    background when the peak was large, rate-limited (a trim waits for the interval to
    pass rather than being dropped, so the last flood is always trimmed)."""

    def __init__(
        self,
        after_bytes: int = TRIM_AFTER_BYTES,
        interval_s: float = TRIM_INTERVAL_S,
        settle_s: float = TRIM_SETTLE_S,
    ) -> None:
        self._libc = _glibc()
        self._after = after_bytes
        self._interval = interval_s
        self._settle = settle_s
        self._last = 0.0
        self._pending = False
        self.trims = 0

    def drained(self, peak_bytes: int) -> None:
        """Called on the event loop; returns at once."""
        if self._libc is None or self._pending or peak_bytes < self._after:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # released outside the gateway's loop: nothing to schedule on
            return
        self._pending = True
        wait = max(self._settle, self._last + self._interval - time.monotonic())
        loop.call_later(wait, self._start)

    def _start(self) -> None:
        self._last = time.monotonic()
        # Refused calls leave their payloads in exception/traceback cycles, which only the
        # cycle collector frees; collect the young generations first so trim returns them.
        gc.collect(1)
        task = asyncio.get_running_loop().run_in_executor(None, self._trim)
        task.add_done_callback(self._done)

    def _trim(self) -> None:
        assert self._libc is not None
        self._libc.malloc_trim(0)

    def _done(self, _: object) -> None:
        self._pending = False
        self.trims += 1
