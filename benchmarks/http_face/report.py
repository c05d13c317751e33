"""Medians over the repeats, the issue's targets judged on them, the Markdown.

A ratio is the median of the per-repeat ratios (each repeat measures both sides within
a minute of each other, so slow drift of a shared machine cancels), shown beside the
medians of the throughputs themselves. Each cell records the cores the server used and
the cores other processes took meanwhile; a target whose cells had more than
DISTURBED_CORES of other CPU (median) is judged "disturbed", whatever its ratio: a busy
machine starves the gateway's pool threads (nice +5) first.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from benchmarks.summary_markdown import DISTURBED_CORES

Key = tuple[str, str, str]  # server, model, protocol

# (target, numerator, denominator, at least) on throughput; the RSS target is apart.
TARGETS: tuple[tuple[str, Key, Key, float], ...] = (
    (
        "digits: HTTP /predict >= 3x the Flask server",
        ("default", "digits", "http"),
        ("flask", "digits", "http"),
        3.0,
    ),
    (
        "digits: gRPC Predict (default configuration) >= 2x the naive grpcio server",
        ("default", "digits", "grpc"),
        ("naive-grpc", "digits", "grpc"),
        2.0,
    ),
    (
        "MobileNetV2 INT8, 512 px JPEG: gRPC >= 0.9x the in-process pipeline limit",
        ("default", "mobilenet-int8", "grpc"),
        ("pipeline", "mobilenet-int8", ""),
        0.9,
    ),
    (
        "MobileNetV2 INT8, 512 px JPEG: HTTP >= 0.9x the in-process pipeline limit",
        ("default", "mobilenet-int8", "http"),
        ("pipeline", "mobilenet-int8", ""),
        0.9,
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


def paired_ratio(rows: list[dict[str, Any]], top: Key, bottom: Key) -> tuple[float, list[float]]:
    a, b = _by_repeat(rows, top), _by_repeat(rows, bottom)
    ratios = [a[r] / b[r] for r in sorted(a) if r in b and b[r] > 0]
    return (statistics.median(ratios) if ratios else float("nan")), ratios


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
    for name, top, bottom, least in TARGETS:
        ratio, ratios = paired_ratio(rows, top, bottom)
        other = _other_cores(summary, top, bottom)
        judged.append(
            {
                "target": name,
                "ratio": ratio,
                "ratios": ratios,
                "at_least": least,
                "other_cores": other,
                "verdict": _verdict(ratios, ratio >= least, other),
            }
        )
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
    lines += ["", "| target | median ratio (per repeat) | verdict |", "|---|---|---|"]
    for target in results["targets"]:
        runs = ", ".join(f"{v:.2f}" for v in target["ratios"])
        unit = " MB" if "at_most" in target else "x"
        figure = f"{target['ratio']:.2f}{unit} ({runs})"
        lines.append(f"| {target['target']} | {figure} | **{target['verdict']}** |")
    return "\n".join(lines) + "\n"
