"""Each pull gateway acts only as itself, over the wire against `edge-orchestrator serve`.

Every finding of the fleet-token era is replayed with real gRPC stubs: impersonation on
each RPC, ids that never enrolled or await admission, a revoked board (its open stream
too), a one-time token used twice, a 1 MB id, counts beyond int64, a result flood past
the quota (the database stops growing) and call rates past the limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from edge_contracts.retry_hint import retry_after_ms
from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    db_url,
    postgres_server,
    publisher,
)

pytestmark = pytest.mark.slow

Stub = orchestrator_pb2_grpc.OrchestratorServiceStub


class Cloud:
    def __init__(self, tmp_path: Path) -> None:
        self.db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
        self.db_file = tmp_path / "orchestrator.db"
        self.artifacts = tmp_path / "artifacts"
        self.tmp = tmp_path
        self.serve_args: tuple[str, ...] = ()
        self.process: OrchestratorProcess | None = None
        self.channel: grpc.Channel | None = None

    def start(self) -> Stub:
        self.process = OrchestratorProcess(
            self.db, self.artifacts, "--heartbeat-seconds", "1", *self.serve_args
        )
        self.channel = grpc.insecure_channel(self.process.target)
        return Stub(self.channel)

    def cli(self, *args: str, check: bool = True) -> str:
        return cli(*args, db=self.db, artifacts=self.artifacts, check=check).stdout

    def token(self, *flags: str) -> str:
        created = json.loads(self.cli("enrollment-tokens", "create", *flags, "--json"))
        return str(created["token"])

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            self.process.terminate()


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    """An orchestrator; ``serve_args`` may be set before ``start``."""
    made = Cloud(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def enroll(stub: Stub, gateway_id: str, token: str) -> tuple[tuple[str, str], ...]:
    reply = stub.Enroll(
        orchestrator_pb2.EnrollRequest(gateway_id=gateway_id, enrollment_token=token), timeout=10
    )
    assert reply.gateway_id == gateway_id and len(reply.gateway_secret) > 40
    return (("authorization", f"Bearer {reply.gateway_secret}"),)


def refused(call: object, code: grpc.StatusCode, text: str = "") -> grpc.RpcError:
    assert isinstance(call, grpc.RpcError), call
    assert call.code() == code, (call.code(), call.details())
    assert text in (call.details() or ""), call.details()
    return call


def call(fn: object, *args: object, **kwargs: object) -> object:
    try:
        return fn(*args, **kwargs)  # type: ignore[operator]
    except grpc.RpcError as err:
        return err


def status(
    gateway_id: str, kind: int = 0, **fields: object
) -> orchestrator_pb2.ReportStatusRequest:
    events = [orchestrator_pb2.StatusEvent(model_name="gray", model_version="1", kind=kind)]
    return orchestrator_pb2.ReportStatusRequest(
        gateway_id=gateway_id, events=events if kind else [], **fields
    )


def batch_request(gateway_id: str, batch_id: str, data: bytes = b"", count: int = 1) -> object:
    example = orchestrator_pb2.HardExample(
        model_name="gray", model_version="1", data=data, content_type="image/png"
    )
    aggregate = orchestrator_pb2.ResultAggregate(
        model_name="gray", model_version="1", bucket_seconds=60, success_count=count
    )
    return orchestrator_pb2.ReportResultsRequest(
        gateway_id=gateway_id,
        batch=orchestrator_pb2.ResultBatch(
            batch_id=batch_id,
            created_at=Timestamp(seconds=1_800_000_000),
            aggregates=[aggregate],
            hard_examples=[example] if data else [],
        ),
    )


def subscribe(stub: Stub, gateway_id: str, metadata: object, **labels: str) -> object:
    return stub.Subscribe(
        orchestrator_pb2.SubscribeRequest(gateway_id=gateway_id, labels=labels),
        metadata=metadata,
        timeout=30,
    )


def test_a_gateway_cannot_act_as_another_on_any_rpc(cloud: Cloud, publisher: Publisher) -> None:
    token = cloud.token("--auto-admit")
    cloud.cli(
        "publish", str(publisher.gray_bundle("2")), "--trusted-keys", str(publisher.public_key)
    )
    cloud.cli("assign", "gray", "--gateways", "id=gw-b", "--version", "2")
    stub = cloud.start()
    as_a = enroll(stub, "gw-a", token)
    as_b = enroll(stub, "gw-b", token)
    first = next(iter(subscribe(stub, "gw-b", as_b, site="berlin")))  # type: ignore[call-overload]
    assert [m.model_version for m in first.desired.models] == ["2"]

    # Subscribe as gw-b with gw-a's secret: refused, gw-b's labels untouched.
    stream = subscribe(stub, "gw-b", as_a, site="attacker")
    refused(call(next, iter(stream)), grpc.StatusCode.PERMISSION_DENIED, "belongs to gateway gw-a")  # type: ignore[call-overload]
    inventory = {g["id"]: g for g in json.loads(cloud.cli("gateways", "--json"))}
    assert inventory["gw-b"]["labels"] == {"site": "berlin"}

    # ReportStatus: no fake ROLLED_BACK for gw-b.
    fake = status("gw-b", orchestrator_pb2.STATUS_EVENT_KIND_ROLLED_BACK)
    refused(
        call(stub.ReportStatus, fake, metadata=as_a, timeout=10), grpc.StatusCode.PERMISSION_DENIED
    )
    assert stub.ReportStatus(status("gw-a"), metadata=as_a, timeout=10).events_stored == 0

    # ReportResults: no fake counts for gw-b.
    results = call(stub.ReportResults, iter([batch_request("gw-b", "fake-1", count=10**6)]),
                   metadata=as_a, timeout=10)  # fmt: skip
    refused(results, grpc.StatusCode.PERMISSION_DENIED, "only its own results")
    assert "0 batches" in cloud.cli("feedback", "gray")

    # FetchModel: not as gw-b, and gw-a gets only what is assigned to it (nothing).
    def fetch(gateway_id: str, metadata: object) -> object:
        request = orchestrator_pb2.FetchModelRequest(
            gateway_id=gateway_id, model_name="gray", model_version="2"
        )
        return call(lambda: list(stub.FetchModel(request, metadata=metadata, timeout=10)))

    refused(fetch("gw-b", as_a), grpc.StatusCode.PERMISSION_DENIED)
    refused(fetch("gw-a", as_a), grpc.StatusCode.PERMISSION_DENIED, "not in the desired state")
    chunks = fetch("gw-b", as_b)
    assert isinstance(chunks, list) and sum(len(c.data) for c in chunks) == chunks[0].bundle_size

    # No credential, or one this orchestrator never issued (the old fleet token).
    refused(call(stub.ReportStatus, status("gw-a"), timeout=10), grpc.StatusCode.UNAUTHENTICATED)
    forged = (("authorization", f"Bearer {token}"),)
    refused(call(stub.ReportStatus, status("gw-a"), metadata=forged, timeout=10),
            grpc.StatusCode.UNAUTHENTICATED, "enrolls first")  # fmt: skip


def test_pending_gateways_wait_for_an_operator(cloud: Cloud) -> None:
    token = cloud.token("--labels", "site=lab")
    stub = cloud.start()
    pending = enroll(stub, "gw-new", token)
    refused(call(stub.ReportStatus, status("gw-new"), metadata=pending, timeout=10),
            grpc.StatusCode.PERMISSION_DENIED, "awaits admission")  # fmt: skip
    assert "gw-new   PENDING" in cloud.cli("gateways", "identities")
    assert "gw-new" not in cloud.cli("gateways")  # not in the inventory, nothing assigned
    assert cloud.cli("gateways", "admit", "gw-new").strip() == "gateway gw-new is ADMITTED"
    assert stub.ReportStatus(status("gw-new"), metadata=pending, timeout=10).events_stored == 0
    inventory = {g["id"]: g for g in json.loads(cloud.cli("gateways", "--json"))}
    assert inventory["gw-new"]["labels"] == {"site": "lab"}  # the token's labels

    other = enroll(stub, "gw-other", token)
    cloud.cli("gateways", "reject", "gw-other")
    refused(call(stub.ReportStatus, status("gw-other"), metadata=other, timeout=10),
            grpc.StatusCode.PERMISSION_DENIED, "rejected")  # fmt: skip

    # An enrolled id cannot be enrolled again (taken over) with the token.
    again = call(
        stub.Enroll, orchestrator_pb2.EnrollRequest(gateway_id="gw-new", enrollment_token=token)
    )
    refused(again, grpc.StatusCode.ALREADY_EXISTS, "gateways remove gw-new")
    # Once tokens exist, enrolling without one is refused.
    anonymous = call(stub.Enroll, orchestrator_pb2.EnrollRequest(gateway_id="gw-x"))
    refused(anonymous, grpc.StatusCode.UNAUTHENTICATED, "enrollment token")


def test_a_one_time_token_enrolls_once(cloud: Cloud) -> None:
    token = cloud.token("--one-time", "--auto-admit")
    stub = cloud.start()
    enroll(stub, "gw-1", token)
    second = call(
        stub.Enroll, orchestrator_pb2.EnrollRequest(gateway_id="gw-2", enrollment_token=token)
    )
    refused(second, grpc.StatusCode.PERMISSION_DENIED, "was used already")
    bogus = call(
        stub.Enroll, orchestrator_pb2.EnrollRequest(gateway_id="gw-3", enrollment_token="x")
    )
    refused(bogus, grpc.StatusCode.PERMISSION_DENIED, "unknown or revoked")


def test_revoking_ends_calls_and_the_open_stream(cloud: Cloud) -> None:
    token = cloud.token("--auto-admit")
    stub = cloud.start()
    board = enroll(stub, "gw-stolen", token)
    stream = iter(subscribe(stub, "gw-stolen", board))  # type: ignore[call-overload]
    assert next(stream).HasField("desired")
    assert next(stream).HasField("heartbeat")  # the stream is alive
    assert cloud.cli("gateways", "revoke", "gw-stolen").strip() == "gateway gw-stolen is REVOKED"
    with pytest.raises(grpc.RpcError) as ended:
        for _ in range(10):  # ends at the next heartbeat (1 s here)
            next(stream)
    refused(ended.value, grpc.StatusCode.PERMISSION_DENIED, "was revoked")
    refused(call(stub.ReportStatus, status("gw-stolen"), metadata=board, timeout=10),
            grpc.StatusCode.PERMISSION_DENIED, "was revoked")  # fmt: skip
    # Removed, the id may enroll again (a replacement board), with a new secret.
    cloud.cli("gateways", "remove", "gw-stolen")
    fresh = enroll(stub, "gw-stolen", token)
    assert fresh != board
    assert stub.ReportStatus(status("gw-stolen"), metadata=fresh, timeout=10).events_stored == 0
    refused(call(stub.ReportStatus, status("gw-stolen"), metadata=board, timeout=10),
            grpc.StatusCode.UNAUTHENTICATED)  # fmt: skip


def test_a_call_made_right_after_a_revoke_is_refused(cloud: Cloud) -> None:
    """Unary calls are answered from the orchestrator's admitted set once it has read it;
    a call made after the revoke returned must still be refused, every time."""
    token = cloud.token("--auto-admit")
    stub = cloud.start()
    boards = {f"gw-{i}": enroll(stub, f"gw-{i}", token) for i in range(3)}
    for _ in range(4):  # the set is read in the background after the first calls
        for gateway_id, board in boards.items():
            stub.ReportStatus(status(gateway_id), metadata=board, timeout=10)
        time.sleep(0.6)
    for gateway_id, board in boards.items():
        cloud.cli("gateways", "revoke", gateway_id)
        refused(call(stub.ReportStatus, status(gateway_id), metadata=board, timeout=10),
                grpc.StatusCode.PERMISSION_DENIED, "was revoked")  # fmt: skip


def test_oversized_ids_and_counts_are_invalid_arguments(cloud: Cloud) -> None:
    token = cloud.token("--auto-admit")
    stub = cloud.start()
    huge_id = "g" * (1 << 20)
    bad_enroll = call(
        stub.Enroll, orchestrator_pb2.EnrollRequest(gateway_id=huge_id, enrollment_token=token)
    )
    refused(bad_enroll, grpc.StatusCode.INVALID_ARGUMENT, "1-128 letters")
    board = enroll(stub, "gw-1", token)
    refused(call(stub.ReportStatus, status(huge_id), metadata=board, timeout=10),
            grpc.StatusCode.INVALID_ARGUMENT, "1-128 letters")  # fmt: skip
    overflow = call(stub.ReportResults, iter([batch_request("gw-1", "b-1", count=2**64 - 1)]),
                    metadata=board, timeout=10)  # fmt: skip
    refused(overflow, grpc.StatusCode.INVALID_ARGUMENT, "success_count 18446744073709551615")
    labels = {f"k{i}": "v" for i in range(1000)}
    refused(call(next, iter(subscribe(stub, "gw-1", board, **labels))),  # type: ignore[call-overload]
            grpc.StatusCode.INVALID_ARGUMENT, "1000 labels")  # fmt: skip
    long_reason = orchestrator_pb2.StatusEvent(
        model_name="gray", model_version="1", kind=1, reason="r" * 100_000
    )
    request = orchestrator_pb2.ReportStatusRequest(gateway_id="gw-1", events=[long_reason])
    refused(call(stub.ReportStatus, request, metadata=board, timeout=10),
            grpc.StatusCode.INVALID_ARGUMENT, "event reason")  # fmt: skip


def _db_bytes(cloud: Cloud) -> int:
    return sum(p.stat().st_size for p in cloud.tmp.glob("orchestrator.db*"))


def test_a_result_flood_stops_at_the_quota(cloud: Cloud) -> None:
    cloud.serve_args = ("--result-bytes-per-day", "2000000")
    token = cloud.token("--auto-admit")
    stub = cloud.start()
    board = enroll(stub, "gw-1", token)
    payload = b"\x89PNG" + bytes(200_000)
    stored = 0
    for i in range(40):
        reply = call(stub.ReportResults, iter([batch_request("gw-1", f"b-{i}", payload)]),
                     metadata=board, timeout=20)  # fmt: skip
        if isinstance(reply, grpc.RpcError):
            err = refused(reply, grpc.StatusCode.RESOURCE_EXHAUSTED, "daily quota")
            hint = retry_after_ms(err.trailing_metadata())  # type: ignore[attr-defined]
            assert hint is not None and 0 < hint <= 86_400_000
            break
        stored += 1
    assert 5 <= stored <= 10  # 2 MB of 200 KB batches
    before = _db_bytes(cloud)
    for i in range(20):
        reply = call(stub.ReportResults, iter([batch_request("gw-1", f"c-{i}", payload)]),
                     metadata=board, timeout=20)  # fmt: skip
        refused(reply, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert _db_bytes(cloud) - before < 64 * 1024  # 4 MB refused, nothing stored


def test_calls_beyond_the_rate_limit_get_a_retry_hint(cloud: Cloud) -> None:
    cloud.serve_args = (
        "--rate-per-second",
        "1",
        "--rate-burst",
        "5",
        "--enroll-rate-per-second",
        "1",
        "--enroll-burst",
        "5",
    )
    token = cloud.token("--auto-admit")
    stub = cloud.start()
    board = enroll(stub, "gw-1", token)
    replies = [
        call(stub.ReportStatus, status("gw-1"), metadata=board, timeout=10) for _ in range(12)
    ]
    limited = [r for r in replies if isinstance(r, grpc.RpcError)]
    assert 5 <= 12 - len(limited) <= 7 and limited
    err = refused(limited[0], grpc.StatusCode.RESOURCE_EXHAUSTED, "ReportStatus")
    assert 0 < (retry_after_ms(err.trailing_metadata()) or 0) <= 1000  # type: ignore[attr-defined]
    # Another gateway has its own bucket.
    other = enroll(stub, "gw-2", token)
    assert stub.ReportStatus(status("gw-2"), metadata=other, timeout=10).events_stored == 0
    # Enrollment per token: a flood of new ids stops after the burst.
    floods = [
        call(
            stub.Enroll,
            orchestrator_pb2.EnrollRequest(gateway_id=f"fake-{i}", enrollment_token=token),
        )
        for i in range(30)
    ]
    assert sum(isinstance(f, grpc.RpcError) for f in floods) >= 20
    refused(
        next(f for f in floods if isinstance(f, grpc.RpcError)), grpc.StatusCode.RESOURCE_EXHAUSTED
    )


def test_one_time_tokens_and_quotas_hold_under_races_on_both_databases(db_url: str) -> None:
    """Concurrent enrollments with one one-time token, and concurrent charges against a
    quota, on SQLite and PostgreSQL: one enrollment wins, the quota is never exceeded."""
    from concurrent.futures import ThreadPoolExecutor

    from cloud_orchestrator.errors import CredentialRefused, LimitReached
    from cloud_orchestrator.fleet.identity import Identities
    from cloud_orchestrator.fleet.limits import Quotas, UsageLedger
    from cloud_orchestrator.storage.db import Database

    db = Database(db_url)
    try:
        identities = Identities(db)
        token = identities.create_token(one_time=True, auto_admit=True).token

        def try_enroll(i: int) -> str:
            try:
                return identities.enroll(identities.grant(token), f"gw-{i}").state
            except CredentialRefused:
                return "refused"

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(try_enroll, range(8)))
        assert outcomes.count("ADMITTED") == 1 and outcomes.count("refused") == 7

        ledger = UsageLedger(db, Quotas(result_bytes_per_day=10_000, events_per_day=10))

        def charge(_: int) -> bool:
            try:
                ledger.charge("gw-0", result_bytes=1_000)
                return True
            except LimitReached:
                return False

        with ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(charge, range(30))) == 10
        assert ledger.usage("gw-0") == (10_000, 0)
    finally:
        db.dispose()
