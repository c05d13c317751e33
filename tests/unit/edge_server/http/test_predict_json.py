"""predict_json builds exactly the JSON mapping of the PredictResponse message."""

from __future__ import annotations

import json
import math
import random
import struct

import numpy as np
import pytest

from edge_server.http.message_json import message_json
from edge_server.http.predict_json import predict_json, shortest_float32
from edge_server.inference.postprocess import Classification, ClassScore
from edge_server.inference.predictor import PredictOutput, StageTimings
from edge_server.wire.edge_v1 import to_predict_response


def _float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def _output(scores: list[float], raw: np.ndarray | None = None) -> PredictOutput:
    entries = tuple(
        ClassScore(i * 7, f"class {i}" if i % 2 else "", s) for i, s in enumerate(scores)
    )
    top = entries[0] if entries else ClassScore(-1, "", 0.0)
    return PredictOutput(
        "mobilenet-int8",
        "3",
        Classification(top.class_id, top.label, top.score, entries),
        raw,
        StageTimings(1200, 0, 6400, 35, 7700),
    )


def _via_message(output: PredictOutput, request_id: str) -> dict[str, object]:
    return message_json(to_predict_response(output, request_id))


@pytest.mark.parametrize("seed", range(20))
def test_equal_to_the_message_mapping(seed: int) -> None:
    rng = random.Random(seed)
    # float32 probabilities as the classifier gives them, and a few awkward ones.
    scores = [_float32(rng.random() ** rng.choice([1, 3, 8])) for _ in range(rng.randint(1, 8))]
    scores += rng.sample([0.0, 1.0, 0.987, 1e-45, 3.4e38, 0.1, 1 / 3], 2)
    output = _output(scores)
    request_id = rng.choice(["", "req-1", "é ✓"])
    assert predict_json(output, request_id) == _via_message(output, request_id)


def test_no_classes_and_bytes_on_the_wire_match() -> None:
    output = _output([])
    ours = predict_json(output, "x")
    assert ours == _via_message(output, "x")
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(_via_message(output, "x")))


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_scores_that_are_not_numbers_are_left_to_the_message_path(score: float) -> None:
    assert predict_json(_output([0.5, score]), "") is None
    assert predict_json(_output([score]), "") is None


def test_raw_output_is_left_to_the_message_path() -> None:
    assert predict_json(_output([0.5], raw=np.zeros((1, 3), np.float32)), "") is None


def test_shortest_float32_reads_back_as_the_same_float32() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        value = _float32(rng.uniform(-1, 1) * 10 ** rng.randint(-40, 38))
        short = shortest_float32(value)
        assert _float32(short) == value
        assert len(repr(short)) <= len(repr(value))
