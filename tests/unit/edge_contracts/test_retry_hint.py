"""The retry hint (edge_contracts/retry_hint.py): written by status_for as both
``retry-after-ms`` and gRPC's rich error model (google.rpc.Status + RetryInfo in
``grpc-status-details-bin``), read back RetryInfo first, garbage ignored."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from edge_client import errors as client_errors
from edge_client.push_protocol import Retrying
from edge_contracts import retry_hint, status
from edge_server.errors import ModelNotFound, Overloaded

DETAILS_KEY = "grpc-status-details-bin"


def rich_status(retry_delay: duration_pb2.Duration | None, *, code: int = 8) -> bytes:
    rich = status_pb2.Status(code=code, message="busy")
    if retry_delay is not None:
        rich.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=retry_delay))
    encoded: bytes = rich.SerializeToString()
    return encoded


def test_status_for_sends_both_items_with_the_status_own_code_and_message() -> None:
    refused = status.status_for(Overloaded("queue full", retry_after_ms=1250))
    metadata = dict(refused.trailing_metadata)
    assert metadata["retry-after-ms"] == "1250"
    details = metadata[DETAILS_KEY]
    assert isinstance(details, bytes)

    rich = status_pb2.Status.FromString(details)
    # grpc rejects grpc-status-details-bin whose code or message differ from the call's.
    assert rich.code == refused.code.value[0] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert rich.message == refused.message == "queue full"
    assert len(rich.details) == 1
    retry_info = error_details_pb2.RetryInfo()
    assert rich.details[0].Unpack(retry_info)
    assert (retry_info.retry_delay.seconds, retry_info.retry_delay.nanos) == (1, 250_000_000)
    assert retry_hint.retry_after_ms(refused.trailing_metadata) == 1250


def test_an_error_without_a_hint_has_no_metadata() -> None:
    assert status.status_for(ModelNotFound("gone")).trailing_metadata == ()
    assert status.status_for(RuntimeError("x")).trailing_metadata == ()


def test_the_plain_key_is_one_constant_for_both_sides() -> None:
    assert status.RETRY_AFTER_KEY is retry_hint.RETRY_AFTER_KEY is client_errors.RETRY_AFTER_KEY


def test_retry_info_is_preferred_over_the_plain_key() -> None:
    metadata = (
        ("retry-after-ms", "10"),
        (DETAILS_KEY, rich_status(duration_pb2.Duration(seconds=2, nanos=5_000_000))),
    )
    assert retry_hint.retry_after_ms(metadata) == 2005
    # Keys arrive lowercase from grpc, but pairs built by hand may not be.
    assert retry_hint.retry_after_ms([("Grpc-Status-Details-Bin", metadata[1][1])]) == 2005


def test_a_fraction_of_a_millisecond_rounds_up() -> None:
    delay = duration_pb2.Duration(seconds=0, nanos=1_000_001)
    assert retry_hint.retry_after_ms([(DETAILS_KEY, rich_status(delay))]) == 2


def test_the_plain_key_is_the_fallback() -> None:
    assert retry_hint.retry_after_ms((("retry-after-ms", "40"),)) == 40
    assert retry_hint.retry_after_ms((("retry-after-ms", b" 40 "),)) == 40
    # Details without a RetryInfo (another detail type only) leave the plain key.
    assert (
        retry_hint.retry_after_ms(((DETAILS_KEY, rich_status(None)), ("retry-after-ms", "7"))) == 7
    )


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (),
        [("x-other", "1")],
        [(DETAILS_KEY, b"\xff\xfe not a protobuf")],
        [(DETAILS_KEY, "text where bytes belong")],
        [(DETAILS_KEY, rich_status(duration_pb2.Duration(seconds=-1)))],
        [(DETAILS_KEY, rich_status(duration_pb2.Duration(nanos=-5)))],
        [("retry-after-ms", "soon")],
        [("retry-after-ms", "-5")],
        [("retry-after-ms", "1.5")],
        [("retry-after-ms", 12)],
        [(7, "12"), ("retry-after-ms",), "not a pair"],
        12,
    ],
)
def test_garbage_is_no_hint_and_never_raises(metadata: Any) -> None:
    assert retry_hint.retry_after_ms(metadata) is None


def test_garbage_details_fall_back_to_the_plain_key() -> None:
    metadata = ((DETAILS_KEY, b"\x0a\xff\xff"), ("retry-after-ms", "33"))
    assert retry_hint.retry_after_ms(metadata) == 33


def test_the_client_exception_reads_the_same_value() -> None:
    metadata = ((DETAILS_KEY, rich_status(duration_pb2.Duration(seconds=3))),)
    refused = client_errors.error_for_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", metadata)
    assert isinstance(refused, client_errors.ResourceExhausted)
    assert refused.retry_after_ms == 3000


def test_a_negative_hint_is_sent_as_zero() -> None:
    sent = retry_hint.hint_metadata(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", -20)
    assert sent[0] == ("retry-after-ms", "0")
    assert retry_hint.retry_after_ms(sent) == 0


class Refused(grpc.RpcError):  # type: ignore[misc]  # grpc has no stubs
    """What a push attempt raises: a status with trailing metadata."""

    def __init__(self, code: grpc.StatusCode, metadata: Any) -> None:
        super().__init__(code.name)
        self._code, self._metadata = code, metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def trailing_metadata(self) -> Any:
        return self._metadata


def test_the_push_retry_waits_at_least_the_hint() -> None:
    hinted = status.status_for(Overloaded("busy", retry_after_ms=700)).trailing_metadata
    retrying = Retrying(max_attempts=5, initial_backoff=0.01, max_backoff=0.02)
    assert (retrying.delay(1, Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, hinted)) or 0) >= 0.7
    assert (retrying.delay(2, Refused(grpc.StatusCode.UNAVAILABLE, hinted)) or 0) >= 0.7
    # Without a hint RESOURCE_EXHAUSTED is a quota or a bundle too large: final.
    assert retrying.delay(3, Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, ())) is None
    assert retrying.delay(5, Refused(grpc.StatusCode.RESOURCE_EXHAUSTED, hinted)) is None
