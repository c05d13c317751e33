"""Turn a benchmark run's results into the Markdown summary (the verdicts themselves
are judged in benchmarks/target_verdicts.py), and the cell look-ups both use."""

from __future__ import annotations

import math
from typing import Any

DISTURBED_CORES = 0.25  # "other" CPU above this marks a cell as disturbed


def fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def find_cell(
    cells: list[dict[str, Any]],
    model: str,
    kind: str,
    batching: str,
    clients: int,
    workers: int = 1,
) -> dict[str, Any] | None:
    """The gateway row of one cell; ``workers`` = gateway processes (rows from runs
    before the workers dimension count as 1)."""
    for row in cells:
        key = (row["model"], row["input"], row["batching"], row["concurrency"])
        if key == (model, kind, batching, clients) and row.get("workers", 1) == workers:
            found: dict[str, Any] = row
            return found
    return None


def naive_cell(
    results: dict[str, Any], model: str, kind: str, clients: int, server: str = "naive"
) -> dict[str, Any] | None:
    for row in results.get("naive", []):
        if (row["model"], row["input"], row["concurrency"], row["server"]) == (
            model,
            kind,
            clients,
            server,
        ):
            found: dict[str, Any] = row
            return found
    return None


def add_ratios(
    row: dict[str, Any], raw: dict[str, Any] | None, pipe: dict[str, Any] | None
) -> None:
    rps = row["throughput_rps"]
    if raw:
        row["x_raw_best"] = rps / raw["best_rps"]
        row["x_raw_b1"] = rps / raw["batch1_rps"]
        row["x_raw_p50"] = row["p50_ms"] / raw["p50_ms"] if row["p50_ms"] else float("nan")
    if pipe and row["input"] == "image":
        row["x_pipeline"] = rps / pipe["throughput_rps"]


def _naive_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | model | input | clients | req/s | p50 ms | p99 ms | gateway req/s | "
        "gateway / naive | other CPU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.get("naive", []):
        gw = find_cell(results["cells"], r["model"], r["input"], "on", r["concurrency"])
        lines.append(
            f"| {r['server']} | {r['model']} | {r['input']} | {r['concurrency']} | "
            f"{fmt(r['throughput_rps'])} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            + (
                f"{fmt(gw['throughput_rps'])} | {gw['throughput_rps'] / r['throughput_rps']:.2f} | "
                if gw
                else "- | - | "
            )
            + f"{r['cpu']['other']:.2f} |"
        )
    return lines


def _raw_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| model | raw b1 p50 ms | raw b1 req/s | raw best req/s (arrangement) | "
        "pipeline limit img/s (arrangement) | decode+resize ms | normalize ms | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, raw in results["raw"].items():
        pipe = results["pipeline"].get(model)
        lines.append(
            f"| {model} | {raw['p50_ms']:.3f} | {fmt(raw['batch1_rps'])} | "
            f"{fmt(raw['best_rps'])} ({raw['best_config']}) | "
            + (
                f"{fmt(pipe['throughput_rps'])} ({pipe['best']}) | {pipe['decode_ms']:.2f} | "
                f"{pipe['normalize_ms']:.2f} |"
                if pipe
                else "- | - | - |"
            )
            + f" {results.get('limits_other_cpu', {}).get(model, float('nan')):.2f} |"
        )
    return lines


def _cell_table(cells: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | input | batching | workers | clients | req/s | p50 ms | p99 ms | x raw best "
        "| x raw b1 | x pipeline | gw CPU | other CPU | ok |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in cells:
        flag = "yes" if r["verified"] else "NO: " + "; ".join(r["checks"])
        if r["cpu"]["other"] > DISTURBED_CORES:
            flag += " (disturbed)"
        lines.append(
            f"| {r['model']} | {r['input']} | {r['batching']} | {r.get('workers', 1)} | "
            f"{r['concurrency']} | "
            f"{fmt(r['throughput_rps'])} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{fmt(r.get('x_raw_best'), 2)} | {fmt(r.get('x_raw_b1'), 2)} | "
            f"{fmt(r.get('x_pipeline'), 2)} | {r['cpu']['gateway']:.2f} | "
            f"{r['cpu']['other']:.2f} | {flag} |"
        )
    return lines


def _workers_table(cells: list[dict[str, Any]]) -> list[str]:
    """Each cell measured on several gateway processes next to the same cell on one."""
    lines = [
        "| model | input | clients | workers | req/s | x 1 process | p50 ms | p99 ms | gw CPU "
        "| calls per worker % | 1 process: req/s, p50 ms, gw CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in cells:
        if r.get("workers", 1) == 1:
            continue
        one = find_cell(cells, r["model"], r["input"], r["batching"], r["concurrency"])
        calls = r.get("calls_by_worker") or {}
        split = "/".join(f"{100 * n / max(sum(calls.values()), 1):.0f}" for n in calls.values())
        lines.append(
            f"| {r['model']} | {r['input']} | {r['concurrency']} | {r['workers']} | "
            f"{fmt(r['throughput_rps'])} | "
            + (f"{r['throughput_rps'] / one['throughput_rps']:.2f}" if one else "-")
            + f" | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['cpu']['gateway']:.2f} | "
            f"{split or '-'} | "
            + (
                f"{fmt(one['throughput_rps'])}, {one['p50_ms']:.3f}, {one['cpu']['gateway']:.2f} |"
                if one
                else "- |"
            )
        )
    return lines


def local_probe_summary(over: dict[str, Any]) -> str:
    """The normal-priority probe's refusals (a client on the gateway's own cores), as
    "; local probe ..." or "" for results without one."""
    if "local_probe_refused" not in over:
        return ""
    return (
        f"; local probe at normal priority: {over['local_probe_refused']} refusals "
        f"({over['local_probe_refused_within_5ms']} within 5 ms, "
        f"p99 {over['local_probe_refused_p99_ms']:.1f} ms, "
        f"max {over['local_probe_refused_max_ms']:.1f} ms)"
    )


def _overload_section(over: dict[str, Any]) -> list[str]:
    workers = over.get("workers", 1)
    front = over.get("front_maxconn", 0)
    return [
        "## Overload"
        + (f" (--workers {workers})" if workers > 1 else "")
        + (f" (HAProxy front, {front} admitted)" if front else ""),
        "",
        f"{over['model']} {over['input']}"
        + (f" (patches {over['patches']})" if over.get("patches") else "")
        + f": capacity {fmt(over['capacity_rps'])} req/s at 32 "
        f"clients; offered {fmt(over['offered_rps'])} req/s ({over['factor']:.0f}x target) for "
        f"{over['seconds']:.0f} s. Gateway answers: {over['gateway_codes']}. "
        "Probe (100 calls/s): "
        f"{ {k: v['count'] for k, v in over['probe'].get('codes', {}).items()} }, refusals "
        f"p99 {over['probe_refused_p99_ms']:.2f} ms, "
        f"max {over['probe_refused_max_ms']:.2f} ms, "
        f"retry-after-ms {over['probe'].get('retry_after_ms', [])[:1]}"
        f" (probe at {over.get('probe_scheduling', 'normal priority')}"
        + (f", HAProxy at {over['front_scheduling']}" if front else "")
        + ")"
        + local_probe_summary(over)
        + ". RSS"
        + (f" (sum of {workers} processes)" if workers > 1 else "")
        + f" before {over['rss_before_mb']:.0f} MB, max {over['rss_max_mb']:.0f}, "
        f"end {over['rss_end_mb']:.0f}, "
        f"idle after {over['rss_after_idle_mb']:.0f} MB. Alive: {over['alive']}, "
        f"healthy after: {over['healthy_after']}, exit code {over['exit_code']}"
        + (
            f", replicas replaced: {over.get('replicas_replaced') or 'none'}."
            if workers > 1
            else "."
        ),
        "",
    ]


def _issue2_table(results: dict[str, Any]) -> list[str]:
    """Predict at 1/8/32 clients next to raw session.run (issue 2), default settings."""
    lines = [
        "| model | input | clients | req/s | p50 ms | p99 ms | raw p50 ms | p50 / raw | "
        "req/s / raw b1 | req/s / raw best |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in ("digits", "mobilenet"):
        raw = results["raw"].get(model)
        if raw is None:
            continue
        for kind in ("tensor", "image"):
            for clients in (1, 8, 32):
                r = find_cell(results["cells"], model, kind, "on", clients)
                if r is None:
                    continue
                lines.append(
                    f"| {model} | {kind} | {clients} | {fmt(r['throughput_rps'])} | "
                    f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {raw['p50_ms']:.3f} | "
                    f"{r['p50_ms'] / raw['p50_ms']:.1f} | "
                    f"{r['throughput_rps'] / raw['batch1_rps']:.2f} | "
                    f"{r['throughput_rps'] / raw['best_rps']:.2f} |"
                )
    return lines


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        "# Gateway benchmark",
        "",
        f"`{meta['command']}` on {meta['cpu_model']} ({meta['cores']} cores), "
        f"{meta['started']}; Python {meta['python']}, onnxruntime {meta['onnxruntime']}, "
        f"grpcio {meta['grpcio']}; load generator: {meta['generator']}; gateway flags: "
        f"`{' '.join(meta['gateway_args']) or '(defaults)'}`; {meta['duration']:g} s per cell "
        f"after {meta['warmup']:g} s warm-up. Background load before the run: "
        f"{meta['background_cores']:.2f} cores.",
        "",
        "## Raw ONNX Runtime and the in-process pipeline limit",
        "",
        "Raw: `session.run` on ready float32 tensors; `1x2t` = one caller, 2 intra-op "
        "threads; `2x1t` = two concurrent callers, 1 thread each. Pipeline limit: the "
        "same image decoded and preprocessed with PIL in 2 threads plus `session.run`, "
        "no server (best arrangement shown).",
        "",
        *_raw_table(results),
        "",
        "## Gateway (edge-server) under closed-loop load",
        "",
        "`image`: encoded bytes in `Predict` (JPEG photo for MobileNetV2, PNG for digits); "
        "`tensor`: the float32 model input in `Predict`; `v2`: the same tensor through "
        "`inference.GRPCInferenceService/ModelInfer`. Ratios: throughput / raw best batch, "
        "/ raw batch 1, / pipeline limit (image only). CPU columns: cores used by the "
        "gateway and by other processes during the cell. `ok` = verified against the "
        "gateway's per-status counters and the DATA bytes received.",
        "",
        *_cell_table(results["cells"]),
        "",
    ]
    if results.get("gateway_peaks"):
        out += [
            "Peak RSS of each multi-model gateway after its cells (several workers: the sum "
            "of each process's own peak): "
            + ", ".join(f"batching {k}: {v:.0f} MB" for k, v in results["gateway_peaks"].items()),
            "",
        ]
    if any(r.get("workers", 1) > 1 for r in results["cells"]):
        out += [
            "### Several gateway processes (`--workers N`, batching on)",
            "",
            "N processes share the gRPC port (SO_REUSEPORT); the kernel spreads the "
            "clients' connections over them. Each cell next to the same cell on one process.",
            "",
            *_workers_table(results["cells"]),
            "",
        ]
    if results.get("naive"):
        out += [
            "## The naive grpcio server, same run",
            "",
            "benchmarks/naive_server.py: synchronous `grpc.server` with 10 threads, one "
            "session with default options, batch 1, no admission control or metrics; "
            "`echo` answers without running the model (the floor of Python gRPC here); "
            "`grpc.aio echo` is the same with the asyncio server the gateway uses.",
            "",
            *_naive_table(results),
            "",
        ]
    out += [
        "## Issue 2: Predict next to raw session.run (batching on)",
        "",
        *_issue2_table(results),
        "",
    ]
    if results.get("startup"):
        out += [
            "## Cold start and memory",
            "",
            "| model | first answer s (median) | port bound s | RSS idle MB "
            "| peak RSS after load MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in results["startup"]:
            out.append(
                f"| {s['model']} | {s['first_answer_s']:.3f} | {s['port_bound_s']:.3f} | "
                f"{s['rss_idle_mb']:.0f} | {s['peak_rss_mb']:.0f} |"
            )
        out.append("")
    if results.get("footprint"):
        out += ["### Footprint (benchmarks/footprint/)", "", str(results["footprint"]), ""]
    for key in ("overload", "overload_workers2", "overload_front"):
        if results.get(key):
            out += _overload_section(results[key])
    out += [
        "## Targets (same run)",
        "",
        "Judged on the default settings (batching on, one process), then, where measured, "
        "the same targets with several gateway processes (marked `--workers N`).",
        "",
        "| target | measured | threshold | met |",
        "|---|---|---|---|",
    ]
    for t in results.get("targets", []):
        verdict = {True: "**met**", False: "**missed**", None: "-"}[t["met"]]
        out.append(
            f"| {t['target']} | {t['measured']} ({t['detail']}) | {t['threshold']} | {verdict} |"
        )
    for name, prof in results.get("profiles", {}).items():
        out += ["", f"### Profile: {name}", ""]
        for label, data in prof.items():
            if "error" in data:
                out.append(f"- {label}: {data['error']}")
                continue
            out.append(
                f"- {label} ({data['samples']} samples, "
                f"{fmt(data.get('throughput_rps_while_profiled'))} req/s while sampled)"
            )
            out.append("  - by library: " + "; ".join(f"{n} {s}%" for n, s in data["categories"]))
            out.append("  - self: " + "; ".join(f"{n} {s}%" for n, s in data["self"][:10]))
            out.append(
                "  - inclusive: " + "; ".join(f"{n} {s}%" for n, s in data["inclusive"][:12])
            )
    return "\n".join(out) + "\n"
