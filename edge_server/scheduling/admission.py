"""How long a new request would wait: refuse at once what cannot meet its deadline.

A count bound (``--max-queue-size``) caps memory, but the wait behind N admitted
requests depends on the model: 128 digits requests drain in tens of milliseconds,
128 MobileNet requests in about half a second. Each model's drain rate is measured
from its own completions (the interval between two completions while requests were
waiting, which folds in batching and parallel workers), so a request whose deadline
is shorter than the work ahead of it is refused immediately with RESOURCE_EXHAUSTED
and a retry hint, instead of holding a slot until it expires. The same estimate
makes the hint of a full-queue refusal ("retry after the queue has half drained").

A count bound alone does not bound memory: 48 calls of 15 MB PNGs took a gateway to
3 GB. So every call in flight, of every model and method (Predict, PredictStream, V2),
also reserves its estimated bytes (payload + decoded image + model input and output,
edge_server/inference/footprint.py) from one gateway-wide budget before anything is
decoded; a call that does not fit is refused at once, never queued.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from edge_server.catalogue.serving import ServingCatalogue, ServingModel
from edge_server.errors import InvalidInput, Overloaded

SMOOTHING = 0.05  # EWMA weight of one completion interval
MIN_SAMPLES = 16  # refuse by estimate only once the model has shown its pace
MIN_HINT_MS = 10
MAX_HINT_MS = 5_000
DEFAULT_HINT_MS = 50
MIB = 1024 * 1024


@dataclass
class _Pace:
    interval_s: float = 0.0
    samples: int = 0
    last_completion: float = 0.0


class DrainEstimator:
    def __init__(self) -> None:
        self._paces: dict[str, _Pace] = {}

    def completed(self, model: str, received: float, now: float | None = None) -> None:
        """A request of ``model`` that arrived at ``received`` (perf_counter) finished."""
        now = time.perf_counter() if now is None else now
        pace = self._paces.get(model)
        if pace is None:
            pace = self._paces[model] = _Pace()
        # Waiting since before the previous completion: an inter-completion interval.
        # Otherwise the model was idle in between and the request's own time counts.
        interval = now - max(pace.last_completion, received)
        pace.last_completion = now
        if pace.samples == 0:
            pace.interval_s = interval
        else:
            pace.interval_s += SMOOTHING * (interval - pace.interval_s)
        pace.samples += 1

    def wait_s(self, model: str, ahead: int) -> float | None:
        """Expected wait behind ``ahead`` admitted requests, None until measured."""
        pace = self._paces.get(model)
        if pace is None or pace.samples < MIN_SAMPLES:
            return None
        return ahead * pace.interval_s

    def retry_hint_ms(self, model: str, ahead: int) -> int:
        """A retry-after hint: the time for half of the requests ahead to finish."""
        wait = self.wait_s(model, ahead)
        if wait is None:
            return DEFAULT_HINT_MS
        return int(min(MAX_HINT_MS, max(MIN_HINT_MS, wait * 500)))


@dataclass(eq=False)
class Reservation:
    """Bytes one call holds in the memory budget; giving it back twice is harmless."""

    nbytes: int
    released: bool = False


_NOTHING = Reservation(0, released=True)


class AdmissionControl:
    """Per-model queue slots: resolve the version a request runs on and refuse what
    cannot be served in time (RESOURCE_EXHAUSTED with a retry hint).

    The in-flight count is also what the dynamic batcher asks ("is another request of
    this model on its way?"), so it lives here, apart from the predictor that uses it.

    Bytes are reserved across all models (``reserve`` / ``release_bytes``), on the event
    loop only, so plain integers suffice. ``on_memory_refused`` is called with the
    model's name for each call the budget refuses; ``on_drained`` with the peak bytes in
    use since the last time nothing was reserved, each time that count falls back to 0
    (the allocator trims there, edge_server/runtime/allocator.py).
    """

    def __init__(
        self,
        models: ServingCatalogue,
        max_queue_size: int,
        memory_budget_bytes: int = 0,
        on_memory_refused: Callable[[str], None] | None = None,
        on_drained: Callable[[int], None] | None = None,
    ) -> None:
        self._models = models
        self._max_queue = max_queue_size
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self.drain = DrainEstimator()
        self.memory_budget = memory_budget_bytes  # 0 = no byte bound (unit tests)
        self.bytes_in_use = 0
        self._peak_bytes = 0
        self._on_memory_refused = on_memory_refused
        self._on_drained = on_drained

    def queue_depth(self, model_name: str) -> int:
        return self._in_flight[model_name]

    def take(self, model_name: str, model_version: str, deadline: float | None) -> ServingModel:
        """Resolve the version and take a queue slot; give it back with ``release``."""
        model = self._models.resolve(model_name, model_version)
        ahead = self._in_flight[model.name]
        if ahead >= self._max_queue:
            raise Overloaded(
                f"model {model.name!r} has {self._max_queue} requests in progress, the "
                "gateway's limit; retry after a short pause",
                self.drain.retry_hint_ms(model.name, ahead),
            )
        if deadline is not None and ahead:
            wait = self.drain.wait_s(model.name, ahead)
            left = deadline - time.monotonic()
            if wait is not None and wait > left:
                raise Overloaded(
                    f"model {model.name!r} has {ahead} requests ahead, about "
                    f"{wait * 1000:.0f} ms of work, and this call has {max(0.0, left) * 1000:.0f}"
                    " ms left before its deadline; retry later or with a longer deadline",
                    self.drain.retry_hint_ms(model.name, ahead),
                )
        self._in_flight[model.name] += 1
        return model

    def release(self, model: ServingModel, received: float) -> None:
        self._in_flight[model.name] -= 1
        self.drain.completed(model.name, received)

    def abandon(self, model: ServingModel) -> None:
        """Give back a slot whose call was refused before any work: not a completion,
        so the drain pace is not skewed by calls that were never served."""
        self._in_flight[model.name] -= 1

    def reserve(self, model: ServingModel, nbytes: int) -> Reservation:
        """Reserve ``nbytes`` of the memory budget for one call of ``model``.

        Refused at once with Overloaded (RESOURCE_EXHAUSTED + retry hint) when the
        calls in flight leave too little; with InvalidInput when the call alone is
        larger than the whole budget, since no retry could ever fit it. Returns what
        to give back with ``release_bytes``.
        """
        budget = self.memory_budget
        if budget <= 0:
            return _NOTHING
        if nbytes > budget:
            self._refused(model)
            raise InvalidInput(
                f"this call needs about {_mib(nbytes)} of memory (payload, decoded image, "
                f"model input and output), more than the gateway's whole memory budget of "
                f"{_mib(budget)} (--memory-budget-bytes); send a smaller input",
                field="input",
            )
        if self.bytes_in_use + nbytes > budget:
            self._refused(model)
            raise Overloaded(
                f"the gateway's memory budget of {_mib(budget)} is taken by calls in "
                f"progress ({_mib(self.bytes_in_use)} in use) and this call needs about "
                f"{_mib(nbytes)}; retry after a short pause",
                self.drain.retry_hint_ms(model.name, self._in_flight[model.name]),
            )
        self.bytes_in_use += nbytes
        if self.bytes_in_use > self._peak_bytes:
            self._peak_bytes = self.bytes_in_use
        return Reservation(nbytes)

    def release_bytes(self, held: Reservation) -> None:
        """Give a reservation back; a second call for the same one changes nothing (a
        double release must never make room other calls still hold)."""
        if held.released:
            return
        held.released = True
        self.bytes_in_use -= held.nbytes
        if self.bytes_in_use == 0:
            peak, self._peak_bytes = self._peak_bytes, 0
            if self._on_drained is not None:
                self._on_drained(peak)

    @contextlib.contextmanager
    def reserved(self, model: ServingModel, nbytes: int) -> Iterator[Reservation]:
        """``reserve`` and ``release_bytes`` around a block, released on any exit."""
        held = self.reserve(model, nbytes)
        try:
            yield held
        finally:
            self.release_bytes(held)

    def _refused(self, model: ServingModel) -> None:
        if self._on_memory_refused is not None:
            self._on_memory_refused(model.name)

    def take_with_bytes(
        self,
        model_name: str,
        model_version: str,
        deadline: float | None,
        footprint: Callable[[ServingModel], int],
    ) -> tuple[ServingModel, Reservation]:
        """``take``, then ``reserve`` what ``footprint`` says the call holds; a refused
        reservation gives the slot back. Release with ``release`` and ``release_bytes``."""
        model = self.take(model_name, model_version, deadline)
        try:
            return model, self.reserve(model, footprint(model))
        except BaseException:
            self.abandon(model)
            raise

    @contextlib.contextmanager
    def slot(
        self,
        model_name: str,
        model_version: str = "",
        deadline: float | None = None,
        footprint: Callable[[ServingModel], int] | None = None,
    ) -> Iterator[ServingModel]:
        """``take`` (and ``reserve``) and their release around a block; the version is
        fixed at entry."""
        received = time.perf_counter()
        model, held = self.take_with_bytes(
            model_name, model_version, deadline, footprint or _nothing
        )
        try:
            yield model
        finally:
            self.release(model, received)
            self.release_bytes(held)


def _nothing(_: ServingModel) -> int:
    return 0


def _mib(nbytes: int) -> str:
    return f"{nbytes / MIB:.1f} MiB"
