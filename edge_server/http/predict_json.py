"""A prediction's JSON answer built straight from the domain's PredictOutput.

The HTTP face answers ``POST /predict`` with the edge.v1 PredictResponse in its proto3
JSON mapping (proto field names, every field present, 64-bit integers as numbers:
message_json.py). Going through the message and ``json_format.MessageToDict`` costs
about 50 us of Python per answer, a share of a small model's whole request; this module
builds the same object directly. It is equal to
``message_json(to_predict_response(output, request_id))`` for every answer it builds
(tests/unit/edge_server/http/test_predict_json.py checks it against that path), and
leaves to that path what it does not build: raw output tensors and scores that are not
finite numbers (the mapping writes those as strings).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from edge_server.inference.predictor import PredictOutput

_FLOAT32 = struct.Struct("<f")


def shortest_float32(value: float) -> float:
    """``value`` rounded to float32, then the shortest decimal that reads back as that
    float32 (what the proto3 JSON mapping writes for a ``float`` field: 0.987, not
    0.9869999885559082)."""
    single: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    for precision in range(6, 10):  # 9 significant digits always round-trip a float32
        rounded = float(f"{single:.{precision}g}")
        if _FLOAT32.unpack(_FLOAT32.pack(rounded))[0] == single:
            return rounded
    return single


def predict_json(output: PredictOutput, request_id: str) -> dict[str, Any] | None:
    """The answer as a JSON object, or None when the message path must build it."""
    c = output.classification
    if output.raw_output is not None or not math.isfinite(c.confidence):
        return None
    top_k = []
    for entry in c.top_k:
        if not math.isfinite(entry.score):
            return None
        top_k.append(
            {
                "class_id": entry.class_id,
                "label": entry.label,
                "score": shortest_float32(entry.score),
            }
        )
    t = output.timings
    return {
        "model_name": output.model_name,
        "model_version": output.model_version,
        "class_id": c.class_id,
        "confidence": shortest_float32(c.confidence),
        "top_k": top_k,
        "timings": {
            "preprocess_us": t.preprocess_us,
            "queue_us": t.queue_us,
            "inference_us": t.inference_us,
            "postprocess_us": t.postprocess_us,
            "total_us": t.total_us,
        },
        "request_id": request_id,
        "label": c.label,
    }
