"""Medians over the repeats, the issue's targets judged on them, the Markdown.

A ratio is the median of the per-repeat ratios (each repeat measures both sides within
a minute of each other, so slow drift of a shared machine cancels), shown beside the
medians of the throughputs themselves. Each cell records the cores the server used and
the cores other processes took meanwhile; a target whose cells had more than
DISTURBED_CORES of other CPU (median) is judged "disturbed", whatever its ratio: a busy
machine starves the gateway's pool threads (nice +5) first.

A target against the pipeline limit also shows the serving floor (serving_floor.py: the
limit's own work behind a bare Python server) in the same repeats: its ratio to the limit
(the better floor server per repeat) and the gateway's ratio to it. A floor below the
target does not change the verdict; the report says the target is out of reach here.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from benchmarks.summary_markdown import DISTURBED_CORES

Key = tuple[str, str, str]  # server, model, protocol

GRPC_FLOORS: tuple[Key, ...] = (
    ("floor-aio", "mobilenet-int8", "grpc"),
    ("floor-sync", "mobilenet-int8", "grpc"),
)
HTTP_FLOORS: tuple[Key, ...] = (("floor-http", "mobilenet-int8", "http"),)

# (target, numerator, denominator, at least, serving floors) on throughput; the RSS
# target is apart.
TARGETS: tuple[tuple[str, Key, Key, float, tuple[Key, ...]], ...] = (
    (
        "digits: HTTP /predict >= 3x the Flask server",
        ("default", "digits", "http"),
        ("flask", "digits", "http"),
        3.0,
        (),
    ),
    (
        "digits: gRPC Predict (default configuration) >= 2x the naive grpcio server",
        ("default", "digits", "grpc"),
        ("naive-grpc", "digits", "grpc"),
        2.0,
        (),
    ),
    (
        "MobileNetV2 INT8, 512 px JPEG: gRPC >= 0.9x the in-process pipeline limit",
        ("default", "mobilenet-int8", "grpc"),
        ("pipeline", "mobilenet-int8", ""),
        0.9,
        GRPC_FLOORS,
    ),
    (
        "MobileNetV2 INT8, 512 px JPEG: HTTP >= 0.9x the in-process pipeline limit",
        ("default", "mobilenet-int8", "http"),
        ("pipeline", "mobilenet-int8", ""),
        0.9,
        HTTP_FLOORS,
    ),
)
RSS_TARGET_MB = 60.0


def _key(row: dict[str, Any]) -> Key:
    return row["server"], row["model"], row.get("protocol", "")


def _by_repeat(rows: list[dict[str, Any]], key: Key) -> dict[int, float]:
    return {
        row["repeat"]: float(row["throughput_rps"])
        for row in rows
        if (row["server"], row["model"], row.get("protocol", "")) == key
        and row.get("throughput_rps")
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median throughput per (server, model, protocol), every figure kept."""
    keys = sorted(
        {(r["server"], r["model"], r.get("protocol", "")) for r in rows if r.get("throughput_rps")}
    )
    cells = {}
    for key in keys:
        values = list(_by_repeat(rows, key).values())
        unverified = [r["checks"] for r in rows if _key(r) == key and not r.get("verified", True)]
        cpu = [r["cpu"] for r in rows if _key(r) == key and "cpu" in r]
        cells["/".join(key)] = {
            "median_rps": statistics.median(values),
            "runs": values,
            "unverified": unverified,
            "server_cores": _median([c["gateway"] for c in cpu]),
            "other_cores": _median([c["other"] for c in cpu]),
        }
    growth = [
        r["after_http_mb"] - r["before_http_mb"]
        for r in rows
        if r["server"] == "default" and r["model"] == "rss"
    ]
    return {
        "cells": cells,
        "http_rss_growth_mb": growth,
        "workers": sorted(
            {r["workers"] for r in rows if r["server"] == "default" and "workers" in r}
        ),
        "rows": rows,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _best_by_repeat(rows: list[dict[str, Any]], keys: tuple[Key, ...]) -> dict[int, float]:
    """Per repeat, the best throughput of any of these cells."""
    best: dict[int, float] = {}
    for key in keys:
        for repeat, rate in _by_repeat(rows, key).items():
            best[repeat] = max(rate, best.get(repeat, 0.0))
    return best


def _ratios(a: dict[int, float], b: dict[int, float]) -> tuple[float, list[float]]:
    """Median of the per-repeat ratios a/b over the repeats both measured, and them."""
    ratios = [a[r] / b[r] for r in sorted(a) if r in b and b[r] > 0]
    return (statistics.median(ratios) if ratios else float("nan")), ratios


def paired_ratio(rows: list[dict[str, Any]], top: Key, bottom: Key) -> tuple[float, list[float]]:
    return _ratios(_by_repeat(rows, top), _by_repeat(rows, bottom))


def floor_figures(
    rows: list[dict[str, Any]], top: Key, bottom: Key, floors: tuple[Key, ...], least: float
) -> dict[str, Any]:
    """The serving floor (the best of ``floors`` per repeat) against ``bottom``, and
    ``top`` against the floor, both as medians of per-repeat ratios."""
    floor = _best_by_repeat(rows, floors)
    ratio, ratios = _ratios(floor, _by_repeat(rows, bottom))
    gateway, gateway_ratios = _ratios(_by_repeat(rows, top), floor)
    return {
        "servers": [key[0] for key in floors],
        "kind": "gRPC" if top[2] == "grpc" else "HTTP",
        "ratio": ratio,
        "ratios": ratios,
        "gateway_ratio": gateway,
        "gateway_ratios": gateway_ratios,
        "in_reach": bool(ratios) and ratio >= least,
    }


def _other_cores(summary: dict[str, Any], *keys: Key) -> float:
    cells = [summary["cells"].get("/".join(key), {}) for key in keys]
    known = [c["other_cores"] for c in cells if not math.isnan(c.get("other_cores", math.nan))]
    return max(known, default=math.nan)


def _verdict(ratios: list[float], met: bool, other: float) -> str:
    if not ratios:
        return "n/a"
    if other > DISTURBED_CORES:
        return f"disturbed ({other:.2f} cores of other CPU)"
    return "met" if met else "missed"


def targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = summary["rows"]
    judged = []
    for name, top, bottom, least, floors in TARGETS:
        ratio, ratios = paired_ratio(rows, top, bottom)
        other = _other_cores(summary, top, bottom)
        target = {
            "target": name,
            "ratio": ratio,
            "ratios": ratios,
            "at_least": least,
            "other_cores": other,
            "verdict": _verdict(ratios, ratio >= least, other),
        }
        if floors:
            target["floor"] = floor_figures(rows, top, bottom, floors, least)
        judged.append(target)
    growth = summary["http_rss_growth_mb"]
    median_growth = statistics.median(growth) if growth else float("nan")
    judged.append(
        {
            "target": f"HTTP adds <= {RSS_TARGET_MB:.0f} MB RSS to the gateway",
            "ratio": median_growth,
            "ratios": growth,
            "at_most": RSS_TARGET_MB,
            # Memory is not disturbed by other processes' CPU.
            "verdict": _verdict(growth, median_growth <= RSS_TARGET_MB, 0.0),
        }
    )
    return judged


def markdown(results: dict[str, Any]) -> str:
    meta, summary = results["meta"], results["summary"]
    lines = [
        "## HTTP face and default configuration (benchmarks/http_face)",
        "",
        f"{meta['repeats']} repeat(s), {meta['duration']:g} s per cell, {meta['clients']} "
        f"clients, gRPC by {meta['generator']}, HTTP by wrk; gateway configurations: "
        f"{', '.join(meta['configs'])} (the default started {summary['workers']} "
        f"process(es)); {meta['runtime_s']:.0f} s.",
        "",
        "| server | model | protocol | median req/s | runs | server cores | other cores | checks |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, cell in summary["cells"].items():
        server, model, protocol = key.split("/")
        runs = ", ".join(f"{v:.0f}" for v in cell["runs"])
        checks = "; ".join(str(c) for c in cell["unverified"]) or "ok"
        figures = f"{cell['median_rps']:.0f} | {runs} | {cell['server_cores']:.2f}"
        lines.append(
            f"| {server} | {model} | {protocol or '-'} | {figures} | "
            f"{cell['other_cores']:.2f} | {checks} |"
        )
    lines += [
        "",
        "| target | median ratio (per repeat) | verdict | serving floor (same repeats) |",
        "|---|---|---|---|",
    ]
    for target in results["targets"]:
        runs = ", ".join(f"{v:.2f}" for v in target["ratios"])
        unit = " MB" if "at_most" in target else "x"
        figure = f"{target['ratio']:.2f}{unit} ({runs})"
        floor = floor_text(target["floor"]) if "floor" in target else "-"
        lines.append(f"| {target['target']} | {figure} | **{target['verdict']}** | {floor} |")
    if any(t.get("floor", {}).get("ratios") for t in results["targets"]):
        lines += ["", FLOOR_NOTE]
    return "\n".join(lines) + "\n"


FLOOR_NOTE = (
    "Serving floor: benchmarks/serving_floor.py, the pipeline limit's own recipe and session "
    "in a pool of 2 threads behind a bare Python server that does nothing else: grpc.aio with "
    "one run_in_executor hop (floor-aio), grpc.server with 2 threads (floor-sync), aiohttp "
    "(floor-http). The gRPC floor is the better of floor-aio and floor-sync in each repeat."
)


def floor_text(floor: dict[str, Any]) -> str:
    """One target's serving-floor figures, and whether its ratio is out of reach."""
    if not floor["ratios"]:
        return f"n/a ({', '.join(floor['servers'])} not measured)"
    runs = ", ".join(f"{v:.2f}" for v in floor["ratios"])
    text = f"{floor['ratio']:.2f}x of the limit ({runs})"
    if floor["gateway_ratios"]:
        text += f"; gateway = {floor['gateway_ratio']:.2f}x of the floor"
    if not floor["in_reach"]:
        text += (
            f"; out of reach of a Python {floor['kind']} server on this machine: "
            f"the floor reaches {floor['ratio']:.2f}x"
        )
    return text
