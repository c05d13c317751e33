"""The issue's targets, judged on one benchmark run's results (``results["targets"]``).

Every target is judged on the default configuration: batching on, one gateway
process. When the run also measured gateways with ``--workers N`` (N > 1), the same
targets are judged again on those cells and named "... (--workers N)", and the
overload target on ``results["overload_workers2"]``, so the summary shows both
configurations side by side. benchmarks/summary_markdown.py renders the verdicts.
"""

from __future__ import annotations

from typing import Any

from benchmarks.summary_markdown import find_cell, fmt, local_probe_summary, naive_cell

NAIVE_DIGITS_RPS = 1800.0  # the naive grpcio server's figure in issue 6
NAIVE_MOBILENET_RPS = 300.0


def evaluate_targets(results: dict[str, Any], batching: str = "on") -> list[dict[str, Any]]:
    """The default configuration's verdicts first (workers 1, then its overload), then
    the same targets for each worker count > 1 the cells were measured with."""
    out = _cell_targets(results, batching, 1)
    if results.get("overload"):
        out.append(_overload_target(results["overload"]))
    for workers in sorted({row.get("workers", 1) for row in results["cells"]} - {1}):
        out += _cell_targets(results, batching, workers)
    if results.get("overload_workers2"):
        out.append(_overload_target(results["overload_workers2"]))
    if results.get("overload_front"):
        out.append(_overload_target(results["overload_front"]))
    return out


def _target(
    name: str,
    measured: str,
    threshold: str,
    met: bool | None,
    detail: str,
    cell: Any = None,
    workers: int = 1,
) -> dict[str, Any]:
    """One verdict; ``cell`` = (model, input, batching, clients) it was judged on."""
    return {
        "target": name + (f" (--workers {workers})" if workers > 1 else ""),
        "measured": measured,
        "threshold": threshold,
        "met": met,
        "detail": detail,
        "cell": cell,
        "workers": workers,
    }


def _cell_targets(results: dict[str, Any], batching: str, workers: int) -> list[dict[str, Any]]:
    """The throughput and latency targets on the cells of one (batching, workers) gateway."""
    cells = results["cells"]
    raw, pipe = results["raw"], results["pipeline"]
    out = []

    def cell(model: str, kind: str, clients: int) -> dict[str, Any] | None:
        return find_cell(cells, model, kind, batching, clients, workers)

    row = cell("digits", "tensor", 32)
    if row:
        goal = 2 * NAIVE_DIGITS_RPS
        image = cell("digits", "image", 32)
        out.append(
            _target(
                "digits: 32 clients >= 2x naive grpcio (1,800 req/s)",
                f"{fmt(row['throughput_rps'])} req/s tensor "
                f"({row['throughput_rps'] / NAIVE_DIGITS_RPS:.2f}x naive)"
                + (f"; image {fmt(image['throughput_rps'])} req/s" if image else ""),
                f">= {fmt(goal)} req/s",
                row["throughput_rps"] >= goal,
                _workers_note(cells, row, workers)
                + f"x raw best {row.get('x_raw_best', float('nan')):.2f}"
                + _vs_naive(results, row, "digits", "tensor"),
                ("digits", "tensor", batching, 32),
                workers,
            )
        )
    row = cell("digits", "tensor", 1)
    if row:
        image = cell("digits", "image", 1)
        out.append(
            _target(
                "digits: p50 at 1 client < 0.3 ms",
                f"{row['p50_ms']:.3f} ms tensor"
                + (f"; image {image['p50_ms']:.3f} ms" if image else ""),
                "< 0.300 ms",
                row["p50_ms"] < 0.3,
                _workers_note(cells, row, workers)
                + (
                    f"raw session.run p50 {raw['digits']['p50_ms']:.3f} ms"
                    if "digits" in raw
                    else ""
                )
                + _naive_p50(results),
                ("digits", "tensor", batching, 1),
                workers,
            )
        )
    row = cell("mobilenet-int8", "image", 32)
    if row and "mobilenet-int8" in pipe:
        limit = pipe["mobilenet-int8"]["throughput_rps"]
        goal = max(0.9 * limit, 1.5 * NAIVE_MOBILENET_RPS)
        out.append(
            _target(
                "MobileNetV2 INT8 JPEG: 32 clients >= 0.9x pipeline limit and >= 1.5x naive (300)",
                f"{fmt(row['throughput_rps'])} req/s = "
                f"{row['throughput_rps'] / limit:.2f}x pipeline "
                f"({fmt(limit)}), {row['throughput_rps'] / NAIVE_MOBILENET_RPS:.2f}x naive",
                f">= {fmt(goal)} req/s",
                row["throughput_rps"] >= goal,
                _workers_note(cells, row, workers)
                + f"pipeline best: {pipe['mobilenet-int8']['best']}"
                + _vs_naive(results, row, "mobilenet-int8", "image"),
                ("mobilenet-int8", "image", batching, 32),
                workers,
            )
        )
    # The tensor target, judged on each way a tensor reaches the gateway: its bytes in
    # the Predict message, and (V2) a region of system shared memory on the same board.
    for kind, how in (("tensor", "in the message"), ("v2-shm", "in shared memory (V2)")):
        row = cell("mobilenet-int8", kind, 32)
        if not row or "mobilenet-int8" not in raw:
            continue
        best = raw["mobilenet-int8"]["best_rps"]
        out.append(
            _target(
                f"MobileNetV2 INT8 tensor {how}: 32 clients >= 0.85x raw session.run at best batch",
                f"{fmt(row['throughput_rps'])} req/s = {row['throughput_rps'] / best:.2f}x raw "
                f"best ({fmt(best)}, {raw['mobilenet-int8']['best_config']})",
                f">= {fmt(0.85 * best)} req/s",
                row["throughput_rps"] >= 0.85 * best,
                _workers_note(cells, row, workers)
                + _vs_naive(results, row, "mobilenet-int8", "tensor").lstrip("; "),
                ("mobilenet-int8", kind, batching, 32),
                workers,
            )
        )
    return out


def _overload_target(over: dict[str, Any]) -> dict[str, Any]:
    replaced = over.get("replicas_replaced")
    front = over.get("front_maxconn", 0)
    return _target(
        f"{over['factor']:.0f}x overload for {over['seconds']:.0f} s"
        + (f" (HAProxy front, {front} calls admitted)" if front else ""),
        f"alive {over['alive']}, healthy after {over['healthy_after']}, RSS growth "
        f"{over['rss_growth_mb']:+.1f} MB, probe refusals {over['probe_refused']} "
        f"({over['probe_refused_within_5ms']} within 5 ms, "
        f"max {over['probe_refused_max_ms']:.1f} ms, probe at "
        f"{over.get('probe_scheduling', 'normal priority')}){local_probe_summary(over)}"
        + (f", replicas died and were restarted: {replaced}" if replaced else ""),
        "no crash, RSS growth < 20 MB, every refusal RESOURCE_EXHAUSTED < 5 ms",
        over["met"],
        f"offered {fmt(over['offered_rps'])} req/s vs capacity {fmt(over['capacity_rps'])}; "
        f"gateway codes {over['gateway_codes']}; other codes seen by the probe "
        f"{over['probe_other_codes'] or 'none'}"
        + (f"; HAProxy at {over['front_scheduling']}" if front else "")
        + ("; RSS summed over the worker processes" if over.get("workers", 1) > 1 else "")
        + ("; RSS includes HAProxy" if front else ""),
        workers=over.get("workers", 1),
    )


def _workers_note(cells: list[dict[str, Any]], row: dict[str, Any], workers: int) -> str:
    """For a multi-process cell: its CPU, and its throughput next to one process's."""
    if workers == 1:
        return ""
    one = find_cell(cells, row["model"], row["input"], row["batching"], row["concurrency"])
    versus = f", {row['throughput_rps'] / one['throughput_rps']:.2f}x 1 process" if one else ""
    return f"{workers} processes: gateway CPU {row['cpu']['gateway']:.2f} cores{versus}; "


def _vs_naive(results: dict[str, Any], row: dict[str, Any], model: str, kind: str) -> str:
    naive = naive_cell(results, model, kind, row["concurrency"])
    if naive is None:
        return ""
    return (
        f"; naive server measured in this run: {fmt(naive['throughput_rps'])} req/s, "
        f"gateway = {row['throughput_rps'] / naive['throughput_rps']:.2f}x it"
    )


def _naive_p50(results: dict[str, Any]) -> str:
    parts = []
    for server in ("naive", "echo (no model)", "grpc.aio echo"):
        row = naive_cell(results, "digits", "tensor", 1, server)
        if row:
            parts.append(f"{server} server p50 {row['p50_ms']:.3f} ms")
    return ("; " + ", ".join(parts)) if parts else ""
