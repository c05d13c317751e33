"""Recorder -> outbox -> cloud: the two background loops of the feedback path.

The flush loop moves closed buckets and pending examples from the in-memory
recorder into the SQLite outbox (in a worker thread). The upload loop sends the
oldest batches through ``send`` whenever the cloud is reachable, deletes exactly
the acknowledged ones, and backs off with jitter on failure. ``stop`` flushes
everything still in memory, so results survive a graceful restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from edge_contracts.backoff import Backoff
from edge_server.errors import CloudUnavailable
from edge_server.feedback.outbox import Outbox, OutboxEntry
from edge_server.feedback.recorder import FeedbackRecorder, PendingBatch

__all__ = ["FeedbackPipeline", "Sender", "decode_payload", "encode_batch"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
# (oldest batches, batches dropped so far) -> ids the cloud acknowledged
Sender = Callable[[list[OutboxEntry], int], Awaitable[list[str]]]


def encode_batch(batch: PendingBatch) -> bytes:
    document = {
        "batch_id": batch.batch_id,
        "created_at": batch.created_at,
        "aggregates": [b.to_json() for b in batch.buckets],
        "examples": [
            {
                "model": e.model,
                "version": e.version,
                "class_id": e.class_id,
                "label": e.label,
                "confidence": e.confidence,
                "reason": e.reason,
                "content_type": e.content_type,
                "captured_at": e.captured_at,
                "data": base64.b64encode(e.data).decode("ascii"),
            }
            for e in batch.examples
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def decode_payload(payload: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(payload.decode("utf-8"))
    for example in document.get("examples", []):
        example["data"] = base64.b64decode(example["data"])
    return document


class FeedbackPipeline:
    def __init__(
        self,
        recorder: FeedbackRecorder,
        outbox: Outbox,
        send: Sender,
        flush_seconds: float = 5.0,
        upload_interval_seconds: float = 5.0,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.outbox = outbox
        self._send = send
        self._flush_seconds = flush_seconds
        self._upload_interval = upload_interval_seconds
        self._on_dropped = on_dropped
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="feedback-outbox")
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.uploaded_batches = 0

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="feedback-flush"),
            asyncio.create_task(self._upload_loop(), name="feedback-upload"),
        ]

    def nudge(self) -> None:
        """The cloud is reachable again: try an upload now."""
        self._wake.set()

    async def flush(self, force: bool = False) -> None:
        batch = self.recorder.drain(force)
        if batch is None:
            return
        dropped = await self._io(
            self.outbox.add, batch.batch_id, encode_batch(batch), batch.created_at
        )
        if dropped:
            logger.warning("feedback outbox over its byte cap: dropped %d oldest batches", dropped)
            if self._on_dropped is not None:
                self._on_dropped(dropped)
        self._wake.set()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            try:
                await self.flush()
            except Exception:
                logger.exception("writing feedback to the outbox failed")

    async def _upload_loop(self) -> None:
        backoff = Backoff(1.0, 60.0)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._upload_interval)
            self._wake.clear()
            while True:
                entries = await self._io(self.outbox.pending)
                if not entries:
                    break
                try:
                    dropped = await self._io(self.outbox.dropped)
                    acknowledged = await self._send(entries, dropped)
                except CloudUnavailable as exc:
                    delay = backoff.next()
                    logger.info("feedback upload failed (%s); next try in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    break
                backoff.reset()
                await self._io(self.outbox.ack, acknowledged)
                self.uploaded_batches += len(acknowledged)
                if len(acknowledged) < len(entries):
                    break  # the rest another time

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self.flush(force=True)
        finally:
            await self._io(self.outbox.close)
            self._executor.shutdown(wait=True)
