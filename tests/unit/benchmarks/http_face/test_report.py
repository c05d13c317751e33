"""benchmarks/http_face/report.py: rows in, ratios, verdicts and the serving floor out."""

from __future__ import annotations

import math
from typing import Any

import pytest

from benchmarks.http_face import report

JPEG = "mobilenet-int8"
GRPC_TARGET = "MobileNetV2 INT8, 512 px JPEG: gRPC >= 0.9x the in-process pipeline limit"
HTTP_TARGET = "MobileNetV2 INT8, 512 px JPEG: HTTP >= 0.9x the in-process pipeline limit"
QUIET = {"gateway": 1.9, "loadgen": 0.1, "other": 0.01}


def row(repeat: int, server: str, protocol: str, rps: float, model: str = JPEG) -> dict[str, Any]:
    return {
        "repeat": repeat,
        "server": server,
        "model": model,
        "protocol": protocol,
        "throughput_rps": rps,
        "verified": True,
        "checks": [],
        "cpu": QUIET,
    }


def jpeg_rows(figures: dict[tuple[str, str], list[float]]) -> list[dict[str, Any]]:
    """Rows from {(server, protocol): [req/s per repeat]}."""
    return [
        row(repeat, server, protocol, rps)
        for (server, protocol), runs in figures.items()
        for repeat, rps in enumerate(runs)
    ]


def judged(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["target"]: t for t in report.targets(report.summarize(rows))}


LIMIT_300 = {("pipeline", ""): [300.0, 310.0, 290.0]}


def test_grpc_floor_is_the_better_floor_server_per_repeat_and_the_gateway_is_judged_on_it() -> None:
    rows = jpeg_rows(
        {
            **LIMIT_300,
            ("floor-aio", "grpc"): [258.0, 250.0, 262.0],
            ("floor-sync", "grpc"): [255.0, 266.0, 240.0],
            ("default", "grpc"): [240.0, 248.0, 236.0],
        }
    )
    target = judged(rows)[GRPC_TARGET]
    floor = target["floor"]
    # The better floor per repeat: aio, sync, aio.
    assert floor["ratios"] == pytest.approx([258 / 300, 266 / 310, 262 / 290])
    assert floor["ratio"] == pytest.approx(258.0 / 300.0)  # median of 0.86, 0.858, 0.903
    assert floor["gateway_ratios"] == pytest.approx([240 / 258, 248 / 266, 236 / 262])
    assert floor["gateway_ratio"] == pytest.approx(240 / 258)
    assert floor["servers"] == ["floor-aio", "floor-sync"] and floor["kind"] == "gRPC"
    assert not floor["in_reach"]
    # The verdict logic is the ratio against the limit, floor or not.
    assert target["ratio"] == pytest.approx(240 / 300) and target["verdict"] == "missed"


def test_a_floor_below_the_target_says_out_of_reach_in_the_markdown() -> None:
    rows = jpeg_rows(
        {
            **LIMIT_300,
            ("floor-http", "http"): [255.0, 264.0, 250.0],
            ("default", "http"): [240.0, 250.0, 236.0],
        }
    )
    target = judged(rows)[HTTP_TARGET]
    text = report.floor_text(target["floor"])
    assert text.startswith("0.85x of the limit (0.85, 0.85, 0.86); gateway = 0.94x of the floor")
    assert text.endswith(
        "out of reach of a Python HTTP server on this machine: the floor reaches 0.85x"
    )
    assert target["verdict"] == "missed"


def test_a_floor_at_the_target_is_shown_without_out_of_reach() -> None:
    rows = jpeg_rows({**LIMIT_300, ("floor-aio", "grpc"): [280.0, 290.0, 270.0]})
    floor = judged(rows)[GRPC_TARGET]["floor"]
    assert floor["in_reach"] and floor["ratio"] == pytest.approx(280 / 300)
    assert floor["gateway_ratios"] == []  # no gateway cell: no ratio to the floor
    assert report.floor_text(floor) == "0.93x of the limit (0.93, 0.94, 0.93)"


def test_repeats_missing_a_side_are_left_out_of_the_floor_ratios() -> None:
    rows = jpeg_rows(
        {
            ("pipeline", ""): [300.0, 300.0],
            ("floor-aio", "grpc"): [270.0],  # only repeat 0
            ("default", "grpc"): [240.0, 250.0],
        }
    )
    floor = judged(rows)[GRPC_TARGET]["floor"]
    assert floor["ratios"] == pytest.approx([0.9]) and floor["gateway_ratios"] == pytest.approx(
        [240 / 270]
    )


def test_without_floor_cells_the_floor_is_not_measured_and_the_digits_targets_have_none() -> None:
    rows = jpeg_rows({**LIMIT_300, ("default", "grpc"): [240.0, 250.0, 230.0]})
    targets = judged(rows)
    floor = targets[GRPC_TARGET]["floor"]
    assert floor["ratios"] == [] and math.isnan(floor["ratio"]) and not floor["in_reach"]
    assert report.floor_text(floor) == "n/a (floor-aio, floor-sync not measured)"
    assert all("floor" not in t for name, t in targets.items() if name.startswith("digits"))


def test_markdown_has_the_floor_column_and_cells() -> None:
    rows = jpeg_rows(
        {
            **LIMIT_300,
            ("floor-aio", "grpc"): [258.0, 250.0, 262.0],
            ("floor-sync", "grpc"): [255.0, 266.0, 240.0],
            ("floor-http", "http"): [255.0, 264.0, 250.0],
            ("default", "grpc"): [240.0, 248.0, 236.0],
            ("default", "http"): [240.0, 250.0, 236.0],
        }
    )
    rows += [row(r, "flask", "http", 100.0, "digits") for r in range(3)]
    rows += [row(r, "default", "http", 400.0, "digits") for r in range(3)]
    summary = report.summarize(rows)
    meta = {"repeats": 3, "duration": 4, "clients": 32, "generator": "h2load"}
    results = {
        "meta": {**meta, "configs": ["default"], "runtime_s": 1.0},
        "summary": summary,
        "targets": report.targets(summary),
    }
    text = report.markdown(results)
    assert "| target | median ratio (per repeat) | verdict | serving floor (same repeats) |" in text
    assert "| floor-sync | mobilenet-int8 | grpc | 255 | 255, 266, 240 |" in text
    assert (
        "| digits: HTTP /predict >= 3x the Flask server | 4.00x (4.00, 4.00, 4.00) | **met** | - |"
        in text
    )
    grpc_line = next(line for line in text.splitlines() if line.startswith(f"| {GRPC_TARGET}"))
    assert (
        "**missed** | 0.86x of the limit (0.86, 0.86, 0.90); gateway = 0.93x of the floor"
        in grpc_line
    )
    assert (
        "out of reach of a Python gRPC server on this machine: the floor reaches 0.86x" in grpc_line
    )
    assert report.FLOOR_NOTE in text
