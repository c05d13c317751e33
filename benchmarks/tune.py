"""Sweep the gateway's flags over the cells the targets are judged on.

    python -m benchmarks.tune [--quick] [--duration 3] [--repeats 2]

Each configuration is a fresh `edge-server` with some flags changed; the cells are
digits tensor at 1 and 32 clients, digits PNG at 32, MobileNetV2 INT8 JPEG at 32 and
tensor at 32 and 1 client.
Configurations are interleaved over ``--repeats`` rounds so slow drifts of the
machine affect all of them alike; the median per cell is reported. Flags this
edge-server does not have are skipped. Writes bench-results/tune.json and prints a
Markdown table (req/s, p50 ms for the 1-client cell).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from benchmarks import cells, h2load, models, payloads, report
from benchmarks.noise import wait_quiet
from benchmarks.run_options import RESULTS
from benchmarks.server import EDGE_SERVER, GatewayGroup, GatewayProcess

CELLS = (
    ("digits", "tensor", 1),
    ("digits", "tensor", 32),
    ("digits", "image", 32),
    ("mobilenet-int8", "image", 32),
    ("mobilenet-int8", "tensor", 32),
    ("mobilenet-int8", "tensor", 1),
)
# label, edge-server flags, benchmarks.variants patches, processes sharing the port
Config = tuple[str, list[str], list[str], int]
CONFIGS: tuple[Config, ...] = (
    ("defaults", [], [], 1),
    ("batching off", ["--batching", "false"], [], 1),
    ("1 worker x 2 threads", ["--inference-workers", "1", "--intra-op-threads", "2"], [], 1),
    ("2 workers x 1 thread", ["--inference-workers", "2", "--intra-op-threads", "1"], [], 1),
    ("1 worker x 1 thread", ["--inference-workers", "1", "--intra-op-threads", "1"], [], 1),
    ("queue delay 0", ["--max-queue-delay-us", "0"], [], 1),
    ("queue delay 2000", ["--max-queue-delay-us", "2000"], [], 1),
    ("max batch 4", ["--max-batch-size", "4"], [], 1),
    ("max batch 16", ["--max-batch-size", "16"], [], 1),
    ("max batch 32", ["--max-batch-size", "32"], [], 1),
    ("preprocess workers 1", ["--preprocess-workers", "1"], [], 1),
    ("preprocess workers 3", ["--preprocess-workers", "3"], [], 1),
    ("inline off", ["--inline-threshold-us", "0"], [], 1),
    # Proposed code changes, applied from outside by benchmarks/variants.py:
    ("P: 2 processes", [], [], 2),
    ("P: 2 processes x 1 worker", ["--inference-workers", "1", "--intra-op-threads", "1"], [], 2),
    ("P: no metrics", [], ["no-metrics"], 1),
    ("P: fast classify + cached metrics", [], ["fast-classify", "cached-metrics"], 1),
    ("P: 2 processes + fast classify + cached metrics", [], ["fast-classify", "cached-metrics"], 2),
    (
        "P: 2x2 threads no spin",
        ["--inference-workers", "2", "--intra-op-threads", "2"],
        ["nospin"],
        1,
    ),
)


def supported_flags() -> set[str]:
    text = subprocess.run([str(EDGE_SERVER), "--help"], capture_output=True, text=True).stdout
    return {word for word in text.split() if word.startswith("--")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--configs", default="", help="labels to run, comma-separated")
    args = parser.parse_args(argv)
    duration = args.duration or (1.5 if args.quick else 3.0)
    repeats = args.repeats or (1 if args.quick else 2)
    generator = "h2load" if h2load.binary() else "aio"
    flags = supported_flags()
    wanted = {c.strip() for c in args.configs.split(",") if c.strip()}
    configs = [
        config
        for config in CONFIGS
        if all(a in flags for a in config[1] if a.startswith("--"))
        and (not wanted or config[0] in wanted)
    ]
    root = models.model_root()
    scratch = RESULTS / "scratch"
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {c[0]: {} for c in configs}
    for round_ in range(repeats):
        for label, extra, patches, processes in configs:
            wait_quiet(30.0)
            server = (
                GatewayGroup(root, processes, extra, patches)
                if processes > 1
                else GatewayProcess(root, extra, patches)
            )
            with server as gateway:
                for name, kind, clients in CELLS:
                    payload = payloads.payload(models.MODELS[name], kind, root)
                    row = cells.measure(
                        gateway, payload, clients, duration, 0.5, scratch, generator
                    )
                    runs[label].setdefault(f"{name} {kind} c{clients}", []).append(row)
            print(
                f"round {round_ + 1}/{repeats} {label}: "
                + ", ".join(f"{k} {v[-1]['throughput_rps']:.0f}/s" for k, v in runs[label].items()),
                file=sys.stderr,
                flush=True,
            )
    table = summarize(runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tune.json").write_text(
        json.dumps(
            {
                "duration": duration,
                "repeats": repeats,
                "generator": generator,
                "configs": {c[0]: c[1:] for c in configs},
                "runs": runs,
                "median": table,
            },
            indent=2,
            default=str,
        )
    )
    print(markdown(table, {c[0]: _describe(c) for c in configs}))
    return 0


def _describe(config: Config) -> list[str]:
    _, flags, patches, processes = config
    extra = [f"patch:{p}" for p in patches] + ([f"x{processes} processes"] if processes > 1 else [])
    return [*flags, *extra]


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for label, by_cell in runs.items():
        table[label] = {}
        for cell, rows in by_cell.items():
            table[label][cell] = {
                "throughput_rps": statistics.median(r["throughput_rps"] for r in rows),
                "p50_ms": statistics.median(r["p50_ms"] for r in rows),
                "p99_ms": statistics.median(r["p99_ms"] for r in rows),
                "other_cpu": max(r["cpu"]["other"] for r in rows),
                "verified": all(r["verified"] for r in rows),
            }
    return table


def markdown(table: dict[str, dict[str, Any]], configs: dict[str, list[str]]) -> str:
    cells_ = list(next(iter(table.values())).keys()) if table else []
    lines = [
        "| config | flags | " + " | ".join(cells_) + " | max other CPU |",
        "|---|---|" + "---:|" * (len(cells_) + 1),
    ]
    for label, by_cell in table.items():
        values = []
        for cell in cells_:
            v = by_cell[cell]
            text = f"{v['throughput_rps']:,.0f}/s"
            if cell.endswith(" c1"):
                text += f", p50 {v['p50_ms']:.3f} ms"
            if not v["verified"]:
                text += " (unverified)"
            values.append(text)
        other = max(v["other_cpu"] for v in by_cell.values())
        flag = " (disturbed)" if other > report.DISTURBED_CORES else ""
        lines.append(
            f"| {label} | `{' '.join(configs[label])}` | "
            + " | ".join(values)
            + f" | {other:.2f}{flag} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
