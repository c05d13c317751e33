"""Turn a benchmark run's results into the Markdown summary and the target verdicts."""

from __future__ import annotations

import math
from typing import Any

NAIVE_DIGITS_RPS = 1800.0  # the naive grpcio server's figure in issue 6
NAIVE_MOBILENET_RPS = 300.0
DISTURBED_CORES = 0.25  # "other" CPU above this marks a cell as disturbed


def _f(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def find_cell(
    cells: list[dict[str, Any]], model: str, kind: str, batching: str, clients: int
) -> dict[str, Any] | None:
    for row in cells:
        if (row["model"], row["input"], row["batching"], row["concurrency"]) == (
            model,
            kind,
            batching,
            clients,
        ):
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


def _vs_naive(results: dict[str, Any], row: dict[str, Any], model: str, kind: str) -> str:
    naive = naive_cell(results, model, kind, row["concurrency"])
    if naive is None:
        return ""
    return (
        f"; naive server measured in this run: {_f(naive['throughput_rps'])} req/s, "
        f"gateway = {row['throughput_rps'] / naive['throughput_rps']:.2f}x it"
    )


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


def _target(
    name: str, measured: str, threshold: str, met: bool | None, detail: str, cell: Any = None
) -> dict[str, Any]:
    return {
        "target": name,
        "measured": measured,
        "threshold": threshold,
        "met": met,
        "detail": detail,
        "cell": cell,
    }


def evaluate_targets(results: dict[str, Any], batching: str = "on") -> list[dict[str, Any]]:
    """The issue's targets, judged on the default configuration (batching on)."""
    cells = results["cells"]
    raw, pipe = results["raw"], results["pipeline"]
    out = []
    row = find_cell(cells, "digits", "tensor", batching, 32)
    if row:
        goal = 2 * NAIVE_DIGITS_RPS
        image = find_cell(cells, "digits", "image", batching, 32)
        out.append(
            _target(
                "digits: 32 clients >= 2x naive grpcio (1,800 req/s)",
                f"{_f(row['throughput_rps'])} req/s tensor "
                f"({row['throughput_rps'] / NAIVE_DIGITS_RPS:.2f}x naive)"
                + (f"; image {_f(image['throughput_rps'])} req/s" if image else ""),
                f">= {_f(goal)} req/s",
                row["throughput_rps"] >= goal,
                f"x raw best {row.get('x_raw_best', float('nan')):.2f}"
                + _vs_naive(results, row, "digits", "tensor"),
                ("digits", "tensor", batching, 32),
            )
        )
    row = find_cell(cells, "digits", "tensor", batching, 1)
    if row:
        image = find_cell(cells, "digits", "image", batching, 1)
        out.append(
            _target(
                "digits: p50 at 1 client < 0.3 ms",
                f"{row['p50_ms']:.3f} ms tensor"
                + (f"; image {image['p50_ms']:.3f} ms" if image else ""),
                "< 0.300 ms",
                row["p50_ms"] < 0.3,
                (f"raw session.run p50 {raw['digits']['p50_ms']:.3f} ms" if "digits" in raw else "")
                + _naive_p50(results),
                ("digits", "tensor", batching, 1),
            )
        )
    row = find_cell(cells, "mobilenet-int8", "image", batching, 32)
    if row and "mobilenet-int8" in pipe:
        limit = pipe["mobilenet-int8"]["throughput_rps"]
        goal = max(0.9 * limit, 1.5 * NAIVE_MOBILENET_RPS)
        out.append(
            _target(
                "MobileNetV2 INT8 JPEG: 32 clients >= 0.9x pipeline limit and >= 1.5x naive (300)",
                f"{_f(row['throughput_rps'])} req/s = "
                f"{row['throughput_rps'] / limit:.2f}x pipeline "
                f"({_f(limit)}), {row['throughput_rps'] / NAIVE_MOBILENET_RPS:.2f}x naive",
                f">= {_f(goal)} req/s",
                row["throughput_rps"] >= goal,
                f"pipeline best: {pipe['mobilenet-int8']['best']}"
                + _vs_naive(results, row, "mobilenet-int8", "image"),
                ("mobilenet-int8", "image", batching, 32),
            )
        )
    row = find_cell(cells, "mobilenet-int8", "tensor", batching, 32)
    if row and "mobilenet-int8" in raw:
        best = raw["mobilenet-int8"]["best_rps"]
        out.append(
            _target(
                "MobileNetV2 INT8 tensor: 32 clients >= 0.85x raw session.run at best batch",
                f"{_f(row['throughput_rps'])} req/s = {row['throughput_rps'] / best:.2f}x raw best "
                f"({_f(best)}, {raw['mobilenet-int8']['best_config']})",
                f">= {_f(0.85 * best)} req/s",
                row["throughput_rps"] >= 0.85 * best,
                _vs_naive(results, row, "mobilenet-int8", "tensor").lstrip("; "),
                ("mobilenet-int8", "tensor", batching, 32),
            )
        )
    over = results.get("overload")
    if over:
        out.append(
            _target(
                f"{over['factor']:.0f}x overload for {over['seconds']:.0f} s",
                f"alive {over['alive']}, healthy after {over['healthy_after']}, RSS growth "
                f"{over['rss_growth_mb']:+.1f} MB, probe refusals {over['probe_refused']} "
                f"({over['probe_refused_within_5ms']} within 5 ms, "
                f"max {over['probe_refused_max_ms']:.1f} ms)",
                "no crash, RSS growth < 20 MB, every refusal RESOURCE_EXHAUSTED < 5 ms",
                over["met"],
                f"offered {_f(over['offered_rps'])} req/s vs capacity {_f(over['capacity_rps'])}; "
                f"gateway codes {over['gateway_codes']}; other codes seen by the probe "
                f"{over['probe_other_codes'] or 'none'}",
            )
        )
    return out


def _naive_p50(results: dict[str, Any]) -> str:
    parts = []
    for server in ("naive", "echo (no model)", "grpc.aio echo"):
        row = naive_cell(results, "digits", "tensor", 1, server)
        if row:
            parts.append(f"{server} server p50 {row['p50_ms']:.3f} ms")
    return ("; " + ", ".join(parts)) if parts else ""


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
            f"{_f(r['throughput_rps'])} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            + (
                f"{_f(gw['throughput_rps'])} | {gw['throughput_rps'] / r['throughput_rps']:.2f} | "
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
            f"| {model} | {raw['p50_ms']:.3f} | {_f(raw['batch1_rps'])} | "
            f"{_f(raw['best_rps'])} ({raw['best_config']}) | "
            + (
                f"{_f(pipe['throughput_rps'])} ({pipe['best']}) | {pipe['decode_ms']:.2f} | "
                f"{pipe['normalize_ms']:.2f} |"
                if pipe
                else "- | - | - |"
            )
            + f" {results.get('limits_other_cpu', {}).get(model, float('nan')):.2f} |"
        )
    return lines


def _cell_table(cells: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| model | input | batching | clients | req/s | p50 ms | p99 ms | x raw best | x raw b1 "
        "| x pipeline | gw CPU | other CPU | ok |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in cells:
        flag = "yes" if r["verified"] else "NO: " + "; ".join(r["checks"])
        if r["cpu"]["other"] > DISTURBED_CORES:
            flag += " (disturbed)"
        lines.append(
            f"| {r['model']} | {r['input']} | {r['batching']} | {r['concurrency']} | "
            f"{_f(r['throughput_rps'])} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{_f(r.get('x_raw_best'), 2)} | {_f(r.get('x_raw_b1'), 2)} | "
            f"{_f(r.get('x_pipeline'), 2)} | {r['cpu']['gateway']:.2f} | {r['cpu']['other']:.2f} | "
            f"{flag} |"
        )
    return lines


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
                    f"| {model} | {kind} | {clients} | {_f(r['throughput_rps'])} | "
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
            "Peak RSS of each multi-model gateway after its cells: "
            + ", ".join(f"batching {k}: {v:.0f} MB" for k, v in results["gateway_peaks"].items()),
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
        out += ["### Footprint (benchmarks/footprint.py)", "", str(results["footprint"]), ""]
    over = results.get("overload")
    if over:
        out += [
            "## Overload",
            "",
            f"{over['model']} {over['input']}"
            + (f" (patches {over['patches']})" if over.get("patches") else "")
            + f": capacity {_f(over['capacity_rps'])} req/s at 32 "
            f"clients; offered {_f(over['offered_rps'])} req/s ({over['factor']:.0f}x target) for "
            f"{over['seconds']:.0f} s. Gateway answers: {over['gateway_codes']}. "
            "Probe (100 calls/s): "
            f"{ {k: v['count'] for k, v in over['probe'].get('codes', {}).items()} }, refusals "
            f"p99 {over['probe_refused_p99_ms']:.2f} ms, "
            f"max {over['probe_refused_max_ms']:.2f} ms, "
            f"retry-after-ms {over['probe'].get('retry_after_ms', [])[:1]}. RSS before "
            f"{over['rss_before_mb']:.0f} MB, max {over['rss_max_mb']:.0f}, "
            f"end {over['rss_end_mb']:.0f}, "
            f"idle after {over['rss_after_idle_mb']:.0f} MB. Alive: {over['alive']}, "
            "healthy after: "
            f"{over['healthy_after']}, exit code {over['exit_code']}.",
            "",
        ]
    out += [
        "## Targets (default settings, same run)",
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
                f"{_f(data.get('throughput_rps_while_profiled'))} req/s while sampled)"
            )
            out.append("  - by library: " + "; ".join(f"{n} {s}%" for n, s in data["categories"]))
            out.append("  - self: " + "; ".join(f"{n} {s}%" for n, s in data["self"][:10]))
            out.append(
                "  - inclusive: " + "; ".join(f"{n} {s}%" for n, s in data["inclusive"][:12])
            )
    return "\n".join(out) + "\n"
