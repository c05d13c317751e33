"""What a gateway sends is checked on the way in: values the database cannot hold are
InvalidRequest (INVALID_ARGUMENT) naming the field, never an OverflowError (INTERNAL)."""

from __future__ import annotations

import grpc
import pytest

from cloud_orchestrator.errors import InvalidRequest, LimitReached
from cloud_orchestrator.fleet.limits import RateLimiter
from cloud_orchestrator.grpc import converters
from edge_contracts import status
from edge_contracts.proto.edge.v1 import orchestrator_pb2


def _batch(**aggregate: int) -> orchestrator_pb2.ResultBatch:
    return orchestrator_pb2.ResultBatch(
        batch_id="b-1",
        aggregates=[
            orchestrator_pb2.ResultAggregate(model_name="m", model_version="1", **aggregate)
        ],
    )


def test_counts_beyond_int64_are_invalid_arguments() -> None:
    with pytest.raises(InvalidRequest, match="success_count 18446744073709551615"):
        converters.to_batch("gw-1", _batch(success_count=2**64 - 1))
    assert converters.to_batch("gw-1", _batch(success_count=2**63 - 1)).aggregates[0].success_count
    assert status.code_for(InvalidRequest("x")) is grpc.StatusCode.INVALID_ARGUMENT


def test_strings_longer_than_their_columns_are_invalid_arguments() -> None:
    batch = orchestrator_pb2.ResultBatch(batch_id="b" * 65)
    with pytest.raises(InvalidRequest, match="batch_id has 65 characters; at most 64"):
        converters.to_batch("gw-1", batch)
    model = orchestrator_pb2.RunningModel(model_name="m" * 129)
    with pytest.raises(InvalidRequest, match="model_name has 129 characters"):
        converters.to_reported_models([model])
    with pytest.raises(InvalidRequest, match="65 labels; at most 64"):
        converters.check_labels({f"k{i}": "v" for i in range(65)})
    with pytest.raises(InvalidRequest, match="unknown status_event_kind value 99"):
        converters.to_reported_events([orchestrator_pb2.StatusEvent(kind=99)])  # type: ignore[arg-type]


def test_the_rate_limiter_refills_and_hints_when_to_retry() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    for _ in range(3):
        limiter.take("gw-1", "ReportStatus", now=100.0)
    with pytest.raises(LimitReached) as refused:
        limiter.take("gw-1", "ReportStatus", now=100.0)
    assert refused.value.retry_after_ms == 500
    assert status.code_for(refused.value) is grpc.StatusCode.RESOURCE_EXHAUSTED
    limiter.take("gw-2", "ReportStatus", now=100.0)  # its own bucket
    limiter.take("gw-1", "FetchModel", now=100.0)  # and per method
    limiter.take("gw-1", "ReportStatus", now=100.5)  # refilled
