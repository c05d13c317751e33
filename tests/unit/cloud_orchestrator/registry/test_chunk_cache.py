"""The verified-chunk cache in front of the database artifact store: bounded by bytes,
least recently used out first, one reader per missing chunk however many threads want it,
and a failed read never kept."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloud_orchestrator.registry.chunk_cache import ChunkCache, ChunkKey

BUNDLE = "b" * 64


def key(index: int) -> ChunkKey:
    return (BUNDLE, index, f"{index:064x}")


def test_a_put_chunk_is_found_and_a_missing_one_is_the_callers_to_read() -> None:
    cache = ChunkCache(1000)
    assert cache.claim(key(0)) is None  # ours to read
    cache.put(key(0), b"x" * 100)
    assert cache.claim(key(0)) == b"x" * 100
    assert (cache.hits, cache.misses) == (1, 1)
    # Another digest for the same chunk (the row was published again): not the same entry.
    assert cache.claim((BUNDLE, 0, "f" * 64)) is None


def test_bounded_by_bytes_least_recently_used_out_first() -> None:
    cache = ChunkCache(300)
    for index in range(3):
        assert cache.claim(key(index)) is None
        cache.put(key(index), bytes([index]) * 100)
    assert cache.claim(key(0)) is not None  # 0 used again: 1 is now the oldest
    assert cache.claim(key(3)) is None
    cache.put(key(3), b"3" * 100)
    assert cache.size_bytes == 300
    assert cache.claim(key(1)) is None  # evicted
    cache.release(key(1))
    assert all(cache.claim(key(i)) is not None for i in (0, 2, 3))


def test_a_chunk_larger_than_the_cache_is_handed_out_but_not_kept() -> None:
    cache = ChunkCache(100)
    assert cache.claim(key(0)) is None
    cache.put(key(0), b"x" * 101)
    assert cache.size_bytes == 0
    assert cache.claim(key(0)) is None
    cache.release(key(0))
    disabled = ChunkCache(0)
    assert disabled.claim(key(0)) is None
    disabled.put(key(0), b"x")
    assert disabled.claim(key(0)) is None


def test_many_threads_missing_one_chunk_read_it_once() -> None:
    cache = ChunkCache(1 << 20)
    reads = 0
    lock = threading.Lock()

    def fetch(_: int) -> bytes:
        nonlocal reads
        found = cache.claim(key(0))
        if found is not None:
            return found
        with lock:
            reads += 1
        time.sleep(0.2)  # a slow database read while the others arrive
        cache.put(key(0), b"chunk")
        return b"chunk"

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fetch, range(16)))
    assert results == [b"chunk"] * 16
    assert reads == 1


def test_a_failed_read_is_not_kept_and_lets_a_waiting_thread_read() -> None:
    cache = ChunkCache(1 << 20)
    assert cache.claim(key(0)) is None  # the first reader...
    waiter: list[bytes | None] = []
    thread = threading.Thread(target=lambda: waiter.append(cache.claim(key(0))))
    thread.start()
    time.sleep(0.1)
    cache.release(key(0))  # ...found the row damaged
    thread.join(5)
    assert waiter == [None]  # the waiter reads (and checks) it itself
    assert cache.size_bytes == 0


def test_whole_bundle_checks_are_remembered_per_layout() -> None:
    cache = ChunkCache()
    digests = ("a" * 64, "b" * 64)
    assert not cache.whole_verified(BUNDLE, digests)
    cache.mark_whole(BUNDLE, digests)
    assert cache.whole_verified(BUNDLE, digests)
    assert not cache.whole_verified(BUNDLE, ("b" * 64, "a" * 64))  # reordered chunks


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="0 bytes or more"):
        ChunkCache(-1)
