"""The feedback loop: recorder, privacy policy, outbox and cloud store as plain Python,
then end to end with real processes: results produced while the orchestrator is down
survive a gateway restart and arrive exactly once; the default policy sends no input
bytes; a permissive one sends hard examples that export as a labelled image folder."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, FeedbackStore, HardExampleIn
from cloud_orchestrator.storage.models import HardExampleRow
from edge_contracts.manifest import Manifest, parse_manifest
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.feedback.outbox import Outbox
from edge_server.feedback.pipeline import decode_payload, encode_batch
from edge_server.feedback.recorder import FeedbackRecorder
from tests.support.model_factory import GRAY_PREPROCESSING, linear_classifier
from tests.support.orchestrator import (  # noqa: F401
    GRAY_MANIFEST,
    OrchestratorProcess,
    cli,
    cli_json,
    db_url,
    free_port,
    postgres_server,
    until,
)
from tests.support.processes import ServerProcess

PERMISSIVE = {
    "policy": "hard_examples",
    "low_confidence": 0.5,
    "max_examples_per_hour": 3,
    "max_example_bytes": 4096,
}


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, "PNG")
    return buffer.getvalue()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def manifest(**extra: object) -> Manifest:
    return parse_manifest({"name": "m", "version": "1", **extra})


def test_recorder_aggregates_and_default_policy_keeps_no_inputs() -> None:
    clock = Clock()
    recorder = FeedbackRecorder(bucket_seconds=60, clock=clock)
    plain = manifest()
    for i in range(10):
        recorder.record("m", "1", plain, i % 3, f"c{i % 3}", 0.05 * i, 100 * (i + 1), png(i))
    recorder.record_error("m", "1")
    assert recorder.drain() is None  # the bucket is still open
    clock.now += 60
    batch = recorder.drain()
    assert batch is not None and batch.examples == ()  # default policy: aggregates only
    (bucket,) = batch.buckets
    data = bucket.to_json()
    assert data["classes"] == [[0, "c0", 4], [1, "c1", 3], [2, "c2", 3]]
    assert sum(data["confidence_histogram"]) == 10 and data["confidence_histogram"][0] == 2
    assert data["successes"] == 10 and data["errors"] == 1
    assert data["latency"]["count"] == 10 and data["latency"]["max_us"] == 1000
    assert data["latency"]["sum_us"] == 5500 and 400 <= data["latency"]["p50_us"] <= 1000
    encoded = encode_batch(batch)
    assert b"PNG" not in encoded and decode_payload(encoded)["examples"] == []


def test_permissive_policy_caps_examples_by_threshold_rate_and_size() -> None:
    clock = Clock()
    recorder = FeedbackRecorder(bucket_seconds=1, clock=clock)
    allowed = manifest(feedback=PERMISSIVE)
    recorder.record("m", "1", allowed, 1, "a", 0.9, 10, png(1))  # confident: not kept
    recorder.record("m", "1", allowed, 1, "a", 0.1, 10, b"not an image")  # not an image
    recorder.record("m", "1", allowed, 1, "a", 0.1, 10, png(2) + bytes(5000))  # too big
    for value in range(3, 9):  # 6 hard inputs, 3 per hour allowed
        recorder.record("m", "1", allowed, 2, "b", 0.2, 10, png(value))
    batch = recorder.drain(force=True)
    assert batch is not None
    assert [e.data for e in batch.examples] == [png(3), png(4), png(5)]
    assert {e.content_type for e in batch.examples} == {"image/png"}
    assert recorder.examples_skipped == 5
    clock.now += 3601  # a new hour
    recorder.record("m", "1", allowed, 2, "b", 0.2, 10, png(9))
    later = recorder.drain(force=True)
    assert later is not None and [e.data for e in later.examples] == [png(9)]
    decoded = decode_payload(encode_batch(later))
    assert decoded["examples"][0]["data"] == png(9)
    # A malformed policy falls back to aggregates only.
    broken = manifest(feedback={"policy": "everything"})
    recorder.record("m", "2", broken, 2, "b", 0.1, 10, png(10))
    assert recorder.drain(force=True).examples == ()  # type: ignore[union-attr]


def test_outbox_drops_oldest_over_its_cap_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, max_bytes=2500)
    for i in range(4):
        assert outbox.add(f"b{i}", bytes(1000)) == (1 if i >= 2 else 0)
    assert [e.batch_id for e in outbox.pending()] == ["b2", "b3"]
    outbox.ack(["b2"])
    outbox.close()
    reopened = Outbox(path, max_bytes=2500)
    assert [e.batch_id for e in reopened.pending()] == ["b3"]
    assert reopened.dropped() == 2 and reopened.stats() == (1, 1000)
    reopened.close()


def test_cloud_stores_a_batch_exactly_once(db_url: str, tmp_path: Path) -> None:
    orch = Orchestrator(db_url, tmp_path / "a")
    try:
        store: FeedbackStore = orch.feedback
        batch = BatchIn(
            "batch-1",
            "gw",
            1.0,
            [
                AggregateIn(
                    "m", "1", 0.0, 60, [(0, "zero", 5)], [0] * 9 + [5], 5, 1, 5, 500, 200, 100, 200
                )
            ],
            [HardExampleIn("m", "1", 0, "zero", 0.2, "low_confidence", png(1), "image/png", 2.0)],
        )
        assert store.store(batch) is True
        assert store.store(batch) is False  # a retry after a lost ack
        summary = store.summarize("m")
        (gateway,) = summary.gateways
        assert (gateway.predictions, gateway.errors, gateway.hard_examples) == (5, 1, 1)
        assert gateway.classes == {"zero": 5} and summary.batches == 1
        assert store.export_hard_examples("m", tmp_path / "out") == 1
        assert [p.parent.name for p in (tmp_path / "out").rglob("*.png")] == ["zero"]
    finally:
        orch.close()


def _model(root: Path, name: str, seed: int, **extra: object) -> None:
    linear_classifier(root / name / "1" / "model.onnx", seed=seed)
    document = {"name": name, "version": "1", **GRAY_MANIFEST, **extra}
    (root / name / "1" / "manifest.json").write_text(json.dumps(document))


def _predict(target: str, model: str, images: list[bytes]) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for image in images:
            try:
                stub.Predict(inference_pb2.PredictRequest(model_name=model, image=image), timeout=5)
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def _outbox_batches(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])


@pytest.mark.slow
def test_feedback_survives_restart_arrives_once_and_respects_privacy(tmp_path: Path) -> None:
    root = tmp_path / "models"
    _model(root, "gray", seed=10)  # no feedback section: aggregates only
    _model(root, "hx", seed=10, feedback={**PERMISSIVE, "max_examples_per_hour": 100})
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    port = free_port()  # nothing listens there yet: the cloud is down
    outbox = tmp_path / "outbox.sqlite3"
    args = [
        "--model-root",
        str(root),
        "--orchestrator",
        f"127.0.0.1:{port}",
        "--gateway-id",
        "edge-fb",
        "--feedback-bucket-seconds",
        "1",
        "--feedback-db",
        str(outbox),
        "--inference-workers",
        "1",
        "--preprocess-workers",
        "1",
        "--default-model",
        "gray",
    ]
    private = [png(129), png(130), png(131)]  # low confidence, but gray may not send them
    hard = [png(125), png(126), png(127), png(128)]  # low confidence, hx may send them
    gateway = ServerProcess(args)
    try:
        gateway.wait_serving()
        _predict(gateway.target, "gray", private + [png(200)] * 5 + [b"broken"])
        _predict(gateway.target, "hx", hard + [png(200)] * 3)
        until(lambda: _outbox_batches(outbox) >= 1, timeout=20)
    finally:
        assert gateway.terminate() == 0  # the last open bucket is flushed on the way out
    stored = _outbox_batches(outbox)
    gateway = ServerProcess(args)  # restarted, the cloud still down
    orchestrator = None
    try:
        gateway.wait_serving()
        _predict(gateway.target, "gray", [png(200)] * 2)
        orchestrator = OrchestratorProcess(db, artifacts, "--heartbeat-seconds", "1", port=port)

        def summary(model: str) -> dict[str, object]:
            result = cli_json("feedback", model, db=db, artifacts=artifacts)
            return result["gateways"][0] if result["gateways"] else {}

        until(lambda: summary("gray").get("predictions") == 10, timeout=60)
        until(lambda: summary("hx").get("predictions") == 7, timeout=30)
        until(lambda: _outbox_batches(outbox) == 0, timeout=30)
        gray = summary("gray")
        assert gray["errors"] == 1 and gray["hard_examples"] == 0
        assert sum(gray["classes"].values()) == 10  # type: ignore[attr-defined]
        hx = summary("hx")
        assert hx["hard_examples"] == 4 and hx["versions"] == ["1"]
    finally:
        assert gateway.terminate() == 0
        if orchestrator is not None:
            orchestrator.terminate()
    assert stored >= 1
    orch = Orchestrator(db, artifacts)
    try:
        again = orch.feedback.summarize("gray").gateways[0]
        assert again.predictions == 10  # still exactly once after everything settled
        with orch.db.session() as session:
            rows = session.query(HardExampleRow).all()
            blobs = [bytes(r.data) for r in rows]
            assert {r.model_name for r in rows} == {"hx"}
        assert sorted(blobs) == sorted(hard)
        assert not any(image in blob for image in private for blob in blobs)
    finally:
        orch.close()
    text = cli("feedback", "gray", db=db, artifacts=artifacts).stdout
    assert "edge-fb" in text and "PREDICTIONS" in text

    exported = cli_json(
        "export-hard-examples", "hx", str(tmp_path / "hard"), db=db, artifacts=artifacts
    )
    assert exported["written"] == 4
    from model_tools.datasets import load_labelled_data

    labels = GRAY_MANIFEST["labels"]
    pre = parse_manifest({"preprocessing": GRAY_PREPROCESSING}).preprocessing
    data = load_labelled_data(tmp_path / "hard", pre, ["batch", 1, 8, 8], labels)
    assert data.x.shape == (4, 1, 8, 8)
    index = [json.loads(line) for line in (tmp_path / "hard" / "index.jsonl").open()]
    assert np.array_equal(
        np.sort(data.y), np.sort([labels.index(e["predicted_label"]) for e in index])
    )
