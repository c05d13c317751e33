"""The one exception -> status table (edge_contracts/status.py) and its retry-hint key."""

from __future__ import annotations

import logging
import re

import grpc
import pytest

import cloud_orchestrator.errors as orchestrator_errors
import edge_client.errors as client_errors
import edge_server.errors as gateway_errors
from edge_contracts import status
from edge_contracts.errors import BundleError, EdgeError, IntegrityError, ManifestError

CODE = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ManifestError("m"), CODE.FAILED_PRECONDITION),
        (BundleError("b"), CODE.FAILED_PRECONDITION),
        (IntegrityError("i"), CODE.FAILED_PRECONDITION),
        (gateway_errors.InvalidInput("x"), CODE.INVALID_ARGUMENT),
        (gateway_errors.ModelNotFound("x"), CODE.NOT_FOUND),
        (gateway_errors.ModelNotReady("x"), CODE.UNAVAILABLE),
        (gateway_errors.ShuttingDown("x"), CODE.UNAVAILABLE),
        (gateway_errors.VersionNotActive("x"), CODE.FAILED_PRECONDITION),
        (gateway_errors.Overloaded("x"), CODE.RESOURCE_EXHAUSTED),
        (gateway_errors.DeadlineExpired("x"), CODE.DEADLINE_EXCEEDED),
        (gateway_errors.QuotaExceeded("x"), CODE.RESOURCE_EXHAUSTED),
        (gateway_errors.UpdateInProgress("x"), CODE.ABORTED),
        (gateway_errors.UpdateRejected("x"), CODE.FAILED_PRECONDITION),
        (gateway_errors.InferenceFailed("x"), CODE.INTERNAL),
        (gateway_errors.ModelLoadError("x"), CODE.FAILED_PRECONDITION),
        (gateway_errors.RegionNotFound("x"), CODE.NOT_FOUND),
        (gateway_errors.RegionExists("x"), CODE.ALREADY_EXISTS),
        (gateway_errors.AccessDenied("x"), CODE.PERMISSION_DENIED),
        (gateway_errors.NotEnabled("x"), CODE.UNIMPLEMENTED),
        (orchestrator_errors.NotFound("x"), CODE.NOT_FOUND),
        (orchestrator_errors.InvalidRequest("x"), CODE.INVALID_ARGUMENT),
        (orchestrator_errors.Conflict("x"), CODE.ALREADY_EXISTS),
        (orchestrator_errors.Unauthenticated("x"), CODE.UNAUTHENTICATED),
        (orchestrator_errors.BundleRefused("x"), CODE.FAILED_PRECONDITION),
        (orchestrator_errors.GatewayError("x"), CODE.UNAVAILABLE),
    ],
)
def test_every_domain_error_has_its_code_and_keeps_its_message(
    error: Exception, code: grpc.StatusCode
) -> None:
    assert status.code_for(error) is code
    assert status.status_for(error) == status.RpcStatus(
        code, str(error), status.status_for(error).trailing_metadata
    )


def test_a_subclass_of_a_mapped_error_takes_its_parents_code() -> None:
    class Corrupt(gateway_errors.ModelNotFound):
        pass

    assert status.code_for(Corrupt("gone")) is CODE.NOT_FOUND


def test_overload_carries_the_retry_hint_under_the_shared_key() -> None:
    refused = status.status_for(gateway_errors.Overloaded("queue full", retry_after_ms=120))
    # The plain key first, for old clients; then the same hint as google.rpc.RetryInfo
    # (decoded in tests/unit/edge_contracts/test_retry_hint.py).
    assert refused.trailing_metadata[0] == ("retry-after-ms", "120")
    assert [key for key, _ in refused.trailing_metadata[1:]] == ["grpc-status-details-bin"]
    # The client reads the very same constant.
    assert client_errors.RETRY_AFTER_KEY is status.RETRY_AFTER_KEY == "retry-after-ms"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("secret detail"),
        EdgeError("base class only"),
        gateway_errors.CloudUnavailable("x"),
        orchestrator_errors.LeaseLost("x"),
    ],
)
def test_unexpected_errors_are_internal_with_a_logged_correlation_id(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    assert status.code_for(error) is CODE.INTERNAL
    with caplog.at_level(logging.ERROR, logger="edge_contracts.status"):
        seen = status.status_for(error)
    assert seen.code is CODE.INTERNAL
    assert str(error) not in seen.message  # the caller never sees internals
    found = re.search(r"correlation id ([0-9a-f]{12})", seen.message)
    assert found is not None
    (record,) = caplog.records
    assert found.group(1) in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is error


def test_a_class_cannot_be_given_a_second_code() -> None:
    status.register({gateway_errors.ModelNotFound: CODE.NOT_FOUND})  # same code: harmless
    with pytest.raises(ValueError, match="already mapped to NOT_FOUND"):
        status.register({gateway_errors.ModelNotFound: CODE.INTERNAL})
    assert status.registered()[gateway_errors.ModelNotFound] is CODE.NOT_FOUND
