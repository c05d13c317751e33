"""edge_server/http/message_json.py: proto field names, and 64-bit integers as numbers."""

from __future__ import annotations

from edge_contracts.proto.edge.v1 import inference_pb2
from edge_server.http.message_json import message_json


def test_predict_response_fields_under_proto_names_with_numbers() -> None:
    response = inference_pb2.PredictResponse(
        model_name="digits", model_version="1", class_id=5, label="5", confidence=0.5
    )
    response.top_k.add(class_id=5, label="5", score=0.5)
    response.top_k.add(class_id=2**40, label="big", score=0.25)
    response.timings.total_us = 1234
    data = message_json(response)
    assert data["class_id"] == 5 and isinstance(data["class_id"], int)
    assert [entry["class_id"] for entry in data["top_k"]] == [5, 2**40]
    assert data["timings"]["total_us"] == 1234
    assert data["timings"]["queue_us"] == 0  # defaults are present
    assert data["request_id"] == ""


def test_repeated_wide_integers_and_timestamps() -> None:
    health = inference_pb2.HealthResponse(default_model="digits")
    health.models.add(name="digits", versions_on_disk=["1", "2"]).loaded_at.FromSeconds(0)
    data = message_json(health)
    assert data["models"][0]["loaded_at"] == "1970-01-01T00:00:00Z"
    assert data["status"] == "SERVING_STATUS_UNSPECIFIED"
