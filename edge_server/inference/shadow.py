"""Shadow mode: a staged version also runs on a sample of live requests, off the
response path, and its top-1 agreement with the active version is counted, with the
rest of the evidence a rollout's gates judge (edge_contracts/shadow_evidence.py): both
versions' top-1 confidence deciles and inference times on the same requests, and the
candidate's failures. Every count lives in fixed-size histograms, so a candidate that
shadows for days costs the same memory as one that shadows for a minute.

Bounded on purpose: at most ``max_in_flight`` shadow comparisons at once per model, and
sampling happens before any work, so shadowing can never slow the active version's
answers by more than one comparison in the pool: a run of the candidate and, for a
fair latency pair, one more run of the active version.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from edge_contracts.shadow_evidence import (
    CONFIDENCE_BINS,
    LATENCY_BUCKETS,
    ShadowEvidence,
    confidence_bin,
    latency_bucket,
)
from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.inference.postprocess import classify
from edge_server.inference.runner import RunResult

logger = logging.getLogger(__name__)

Runner = Callable[[ServingModel, dict[str, np.ndarray]], Awaitable[RunResult]]
# Tallies kept per model: the shadowed versions a rollout may still ask about.
MAX_TALLIES_PER_MODEL = 8
# (active model, shadow model, the request's encoded image or None, active top-1, shadow top-1)
DisagreementListener = Callable[[ServingModel, ServingModel, bytes | None, int, int], None]


@dataclass
class ShadowTally:
    compared: int = 0
    agreed: int = 0
    failed: int = 0
    candidate_confidence: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    active_confidence: list[int] = field(default_factory=lambda: [0] * CONFIDENCE_BINS)
    candidate_latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)
    active_latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)

    @property
    def agreement(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0

    def evidence(self) -> ShadowEvidence:
        return ShadowEvidence(
            self.compared,
            self.agreed,
            self.failed,
            0,
            tuple(self.candidate_confidence),
            tuple(self.active_confidence),
            tuple(self.candidate_latency),
            tuple(self.active_latency),
        )


def top1(output: np.ndarray) -> np.ndarray:
    rows = output.reshape(output.shape[0], -1) if output.ndim >= 2 else output.reshape(1, -1)
    result: np.ndarray = np.argmax(rows, axis=1)
    return result


class ShadowRunner:
    def __init__(
        self,
        manager: ServingCatalogue,
        run: Runner,
        sample_rate: float,
        max_in_flight: int = 1,
        rng: random.Random | None = None,
        on_disagreement: Iterable[DisagreementListener] = (),
    ) -> None:
        self._manager = manager
        self._run = run
        self.sample_rate = sample_rate
        self._max_in_flight = max_in_flight
        self._in_flight: dict[str, int] = {}
        self._rng = rng or random.Random()
        self.tallies: dict[tuple[str, str], ShadowTally] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_disagreement: list[DisagreementListener] = list(on_disagreement)

    def offer(
        self,
        model: ServingModel,
        feeds: dict[str, np.ndarray],
        output: np.ndarray,
        image: bytes | None = None,
    ) -> None:
        """Maybe schedule a shadow comparison of this request (never blocks the caller)."""
        slot = self._manager.slot(model.name)
        shadow = slot.shadow if slot else None
        if shadow is None or shadow.version == model.version:
            return
        if self._in_flight.get(model.name, 0) >= self._max_in_flight:
            return
        if self._rng.random() >= self.sample_rate:
            return
        self._in_flight[model.name] = self._in_flight.get(model.name, 0) + 1
        task = asyncio.get_running_loop().create_task(
            self._compare(model, shadow, feeds, output, image)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _compare(
        self,
        active: ServingModel,
        shadow: ServingModel,
        feeds: dict[str, np.ndarray],
        primary: np.ndarray,
        image: bytes | None,
    ) -> None:
        tally = self._tally(shadow.name, shadow.version)
        try:
            # Timed as a pair through the same path, back to back, in alternating order:
            # the active version's own answer may have run inline or in a batch, and
            # comparing that with a pooled shadow run would measure the path, not the
            # model. Its outputs are not used: ``primary`` is what the client got.
            if tally.compared % 2:
                result = await self._run(shadow, feeds)
                reference = await self._run(active, feeds)
            else:
                reference = await self._run(active, feeds)
                result = await self._run(shadow, feeds)
            candidate = result.outputs[0]
            ours, theirs = top1(primary), top1(candidate)
            agreed = np.array_equal(ours, theirs)
            tally.compared += 1
            tally.agreed += int(agreed)
            # Confidence as clients see it (softmax unless the manifest says probabilities).
            mine = classify(candidate, shadow.manifest, 1).confidence
            tally.candidate_confidence[confidence_bin(mine)] += 1
            tally.active_confidence[
                confidence_bin(classify(primary, active.manifest, 1).confidence)
            ] += 1
            tally.candidate_latency[latency_bucket(result.inference_s)] += 1
            tally.active_latency[latency_bucket(reference.inference_s)] += 1
            if not agreed:
                for listener in self.on_disagreement:
                    listener(active, shadow, image, int(ours[0]), int(theirs[0]))
        except Exception as exc:
            tally.failed += 1
            logger.warning("shadow version %s of %s failed: %s", shadow.version, shadow.name, exc)
        finally:
            self._in_flight[shadow.name] -= 1

    def _tally(self, model: str, version: str) -> ShadowTally:
        key = (model, version)
        tally = self.tallies.get(key)
        if tally is None:
            mine = [k for k in self.tallies if k[0] == model]
            for old in mine[: max(0, len(mine) - MAX_TALLIES_PER_MODEL + 1)]:
                del self.tallies[old]  # oldest first: dicts keep insertion order
            tally = self.tallies[key] = ShadowTally()
        return tally

    def tally(self, model: str, version: str) -> ShadowTally | None:
        return self.tallies.get((model, version))

    def shadowing(self) -> list[tuple[str, str, ShadowEvidence]]:
        """Evidence of every version in shadow now (what pull mode reports)."""
        found = []
        for slot in self._manager.slots():
            if slot.shadow is not None:
                tally = self.tallies.get((slot.name, slot.shadow.version)) or ShadowTally()
                found.append((slot.name, slot.shadow.version, tally.evidence()))
        return found
