"""Verified bundle chunks kept in memory, so a thousand gateways fetching one bundle from
``--artifacts postgresql`` read and hash each chunk once per replica, not once each.

Only bytes that matched their sha256 when they were read enter (registry/db_artifacts.py
checks before ``put``), under a key that holds that sha256: a row damaged later is not
read while its verified copy is here, and is caught by the next read from the database.
Bounded by bytes, least recently used out first. A chunk several threads miss at once is
read by one of them; the others wait for it (``claim``), so a burst of fetchers starting
together does not read the same rows a thousand times.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["CHUNK_CACHE_BYTES", "ChunkCache", "ChunkKey"]

CHUNK_CACHE_BYTES = 64 << 20  # 256 chunks of 256 KiB: a few bundles of a few MB

# (bundle sha256, chunk index, chunk sha256): a chunk is found only under the digest its
# bundle's layout names now.
ChunkKey = tuple[str, int, str]


@dataclass
class _Reading:
    """A chunk one thread is reading; the others wait on ``done``."""

    done: threading.Event = field(default_factory=threading.Event)


class ChunkCache:
    def __init__(self, max_bytes: int = CHUNK_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("a chunk cache holds 0 bytes or more")
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[ChunkKey, bytes] = OrderedDict()
        self._reading: dict[ChunkKey, _Reading] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._whole: set[tuple[str, tuple[str, ...]]] = set()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def claim(self, key: ChunkKey, wait_seconds: float = 30.0) -> bytes | None:
        """The cached chunk, waiting while another thread reads it; None when the caller
        is to read it now (then ``put`` or ``release`` it)."""
        while True:
            with self._lock:
                data = self._chunks.get(key)
                if data is not None:
                    self._chunks.move_to_end(key)
                    self.hits += 1
                    return data
                reading = self._reading.get(key)
                if reading is None:
                    self._reading[key] = _Reading()
                    self.misses += 1
                    return None
            # Another thread's read failed or was evicted at once: read it ourselves.
            if not reading.done.wait(wait_seconds):
                return None

    def put(self, key: ChunkKey, data: bytes) -> None:
        """Keep a verified chunk (when it fits) and wake the threads waiting for it."""
        with self._lock:
            if len(data) <= self.max_bytes and key not in self._chunks:
                self._chunks[key] = data
                self._bytes += len(data)
                while self._bytes > self.max_bytes:
                    _, evicted = self._chunks.popitem(last=False)
                    self._bytes -= len(evicted)
            self._release(key)

    def release(self, key: ChunkKey) -> None:
        """The claimed read failed: the waiting threads read it themselves."""
        with self._lock:
            self._release(key)

    def _release(self, key: ChunkKey) -> None:
        reading = self._reading.pop(key, None)
        if reading is not None:
            reading.done.set()

    def whole_verified(self, sha256: str, digests: tuple[str, ...]) -> bool:
        """Whether chunks with exactly these digests were already found to make up the
        bundle ``sha256`` (then its whole hash need not be computed again)."""
        with self._lock:
            return (sha256, digests) in self._whole

    def mark_whole(self, sha256: str, digests: tuple[str, ...]) -> None:
        with self._lock:
            if len(self._whole) > 4096:  # layouts are tiny; bounded all the same
                self._whole.clear()
            self._whole.add((sha256, digests))
