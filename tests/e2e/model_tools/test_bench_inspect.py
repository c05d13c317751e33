"""Benchmarks and inspection on real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_tools.bench import bench_models, format_table
from model_tools.errors import ToolError
from model_tools.inspect_model import format_inspection, inspect_model
from tests.support.digits_model import Digits


def test_bench_reports_percentiles_for_each_model_batch_and_thread_count(digits: Digits) -> None:
    stats = bench_models(
        [digits.fp32, digits.int8], batch_sizes=(1, 4), threads=(1, 2), runs=10, progress=False
    )
    assert len(stats) == 8
    for s in stats:
        assert 0 < s.p50_ms <= s.p90_ms <= s.p99_ms
        assert s.throughput == pytest.approx(s.batch_size * 1000 / s.mean_ms)
    table = format_table(stats)
    assert "p50 ms" in table and str(digits.int8) in table
    json.dumps([s.to_dict() for s in stats])


def test_inspect_tells_fp32_from_int8(digits: Digits) -> None:
    fp32, int8 = inspect_model(digits.fp32), inspect_model(digits.int8)
    assert not fp32["quantized"] and fp32["quantization"] == "none"
    assert int8["quantized"] and int8["quantization"] == "static-int8-qdq"
    assert fp32["opsets"]["ai.onnx"] == 18
    assert fp32["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 1, 28, 28]}]
    assert fp32["outputs"][0]["name"] == "logits"
    assert fp32["op_histogram"]["Conv"] == 2
    assert int8["size_bytes"] < fp32["size_bytes"]
    assert set(int8["opsets"]) == {"ai.onnx"}  # unused domains are pruned
    assert "static-int8-qdq" in format_inspection(int8)


def test_bench_and_inspect_reject_bad_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("definitely not protobuf \x00\xff")
    with pytest.raises(ToolError, match="not a valid ONNX model"):
        inspect_model(text)
    with pytest.raises(ToolError, match="not found"):
        inspect_model(tmp_path / "missing.onnx")
    with pytest.raises(ToolError, match="cannot load"):
        bench_models([text], runs=1, progress=False)
