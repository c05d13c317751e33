"""Request metrics for inference calls, recorded one way for edge.v1, V2 and HTTP alike.

Every call counts once in edge_requests by its outcome: OK with the version that
answered, the status code of a failure, or CANCELLED / DEADLINE_EXCEEDED when the
call was cancelled under it; successful calls also record their stage timings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from edge_contracts.status import code_for
from edge_server.inference.predictor import StageTimings
from edge_server.metrics import GatewayMetrics


class Answered(Protocol):
    """What a successful inference reports (PredictOutput, TensorResult)."""

    @property
    def model_name(self) -> str: ...

    @property
    def model_version(self) -> str: ...

    @property
    def timings(self) -> StageTimings: ...


Result = TypeVar("Result", bound=Answered)


async def observed(
    metrics: GatewayMetrics,
    method: str,
    model: str,
    time_remaining: float | None,
    call: Callable[[], Awaitable[Result]],
) -> Result:
    """Run ``call`` with its metrics and return its result.

    ``model`` is the metrics label for failures (the requested name, or the label
    for unknown names). A failure is counted under the code it will leave with and
    re-raised for the error boundary (or a stream's per-item error) to report;
    cancellation is re-raised after it is counted.
    """
    started = time.perf_counter()
    in_flight = metrics.in_flight_for(method)
    in_flight.inc()
    try:
        result = await call()
    except asyncio.CancelledError:
        elapsed = time.perf_counter() - started
        expired = time_remaining is not None and elapsed >= time_remaining
        code = "DEADLINE_EXCEEDED" if expired else "CANCELLED"
        metrics.observe_request(method, model, "", code, elapsed)
        raise
    except Exception as exc:
        code = code_for(exc)
        if code.name == "RESOURCE_EXHAUSTED":  # by name: the domain imports no grpc
            metrics.overload_rejections.labels(model).inc()
        metrics.observe_request(method, model, "", code.name, time.perf_counter() - started)
        raise
    finally:
        in_flight.dec()
    metrics.observe_success(
        method,
        result.model_name,
        result.model_version,
        time.perf_counter() - started,
        result.timings,
    )
    return result
