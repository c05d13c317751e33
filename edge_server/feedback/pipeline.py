"""Recorder -> outbox -> cloud: the two background loops of the feedback path.

The flush loop moves closed buckets and pending examples from the in-memory
recorder into the SQLite outbox (in a worker thread), split into upload items by
priority class: per model, one item with its aggregates and drift, and one item per
hard example (so a budget or a time-to-live takes examples one by one). The upload
loop sends the most important, oldest items through ``send`` whenever the cloud is
reachable, deletes exactly the acknowledged ones, and backs off with jitter on
failure. ``stop`` flushes everything still in memory, so results survive a graceful
restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from edge_contracts.backoff import Backoff
from edge_server.errors import CloudUnavailable
from edge_server.feedback.outbox import AGGREGATES, EXAMPLES, Drops, Outbox, OutboxEntry, OutboxItem
from edge_server.feedback.recorder import FeedbackRecorder, HardExample, PendingBatch

__all__ = ["FeedbackPipeline", "Sender", "decode_payload", "encode_batch", "outbox_items"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
# (items to send, what the outbox lost so far) -> ids the cloud acknowledged
Sender = Callable[[list[OutboxEntry], Drops], Awaitable[list[str]]]


def _example_json(e: HardExample) -> dict[str, Any]:
    return {
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


def encode_batch(batch: PendingBatch) -> bytes:
    document = {
        "batch_id": batch.batch_id,
        "created_at": batch.created_at,
        "aggregates": [b.to_json() for b in batch.buckets],
        "examples": [_example_json(e) for e in batch.examples],
        "drift": [d.to_json() for d in batch.drift],
    }
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def outbox_items(batch: PendingBatch) -> list[OutboxItem]:
    """Upload items of one drained batch: per model its aggregates and drift, then each
    hard example on its own, each with a fresh batch id (the cloud stores ids once)."""
    models = sorted({b.model for b in batch.buckets} | {d.model for d in batch.drift})
    items = []
    for model in models:
        part = PendingBatch(
            uuid.uuid4().hex,
            batch.created_at,
            tuple(b for b in batch.buckets if b.model == model),
            (),
            tuple(d for d in batch.drift if d.model == model),
        )
        items.append(
            OutboxItem(part.batch_id, encode_batch(part), AGGREGATES, model, part.created_at)
        )
    for example in batch.examples:
        part = PendingBatch(uuid.uuid4().hex, example.captured_at, (), (example,))
        items.append(
            OutboxItem(part.batch_id, encode_batch(part), EXAMPLES, example.model, part.created_at)
        )
    return items


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
    ) -> None:
        self.recorder = recorder
        self.outbox = outbox
        self._send = send
        self._flush_seconds = flush_seconds
        self._upload_interval = upload_interval_seconds
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="feedback-outbox")
        self._wake = asyncio.Event()
        self._reachable = asyncio.Event()  # set by nudge: ends a backoff wait early
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
        """The cloud is reachable again: try an upload now, even in a backoff wait."""
        self._reachable.set()
        self._wake.set()

    async def flush(self, force: bool = False) -> None:
        batch = self.recorder.drain(force)
        if batch is None:
            return
        lost = await self._io(self.outbox.put, outbox_items(batch))
        for (model, reason), count in sorted(lost.items()):
            logger.warning(
                "feedback outbox: %d items of model %s dropped (%s)", count, model, reason
            )
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
                    drops = await self._io(self.outbox.drops)
                    acknowledged = await self._send(entries, drops)
                except CloudUnavailable as exc:
                    delay = backoff.next()
                    logger.info("feedback upload failed (%s); next try in %.1f s", exc, delay)
                    self._reachable.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._reachable.wait(), delay)
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
