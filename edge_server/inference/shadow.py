"""Shadow mode: a staged version also runs on a sample of live requests, off the
response path, and its top-1 agreement with the active version is counted.

Bounded on purpose: at most ``max_in_flight`` shadow runs at once per model, and
sampling happens before any work, so shadowing can never slow the active version's
answers by more than one extra inference in the pool.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edge_server.catalogue.serving import ServingCatalogue, ServingModel

logger = logging.getLogger(__name__)

Runner = Callable[[ServingModel, dict[str, np.ndarray]], Awaitable[list[np.ndarray]]]
# (active model, shadow model, the request's encoded image or None, active top-1, shadow top-1)
DisagreementListener = Callable[[ServingModel, ServingModel, bytes | None, int, int], None]


@dataclass
class ShadowTally:
    compared: int = 0
    agreed: int = 0
    failed: int = 0

    @property
    def agreement(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0


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
        tally = self.tallies.setdefault((shadow.name, shadow.version), ShadowTally())
        try:
            outputs = await self._run(shadow, feeds)
            ours, theirs = top1(primary), top1(outputs[0])
            agreed = np.array_equal(ours, theirs)
            tally.compared += 1
            tally.agreed += int(agreed)
            if not agreed:
                for listener in self.on_disagreement:
                    listener(active, shadow, image, int(ours[0]), int(theirs[0]))
        except Exception as exc:
            tally.failed += 1
            logger.warning("shadow version %s of %s failed: %s", shadow.version, shadow.name, exc)
        finally:
            self._in_flight[shadow.name] -= 1

    def tally(self, model: str, version: str) -> ShadowTally | None:
        return self.tallies.get((model, version))
