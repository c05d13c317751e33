"""``edge-orchestrator feedback`` and ``export-hard-examples``: what gateways reported
about a model's predictions."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_orchestrator.cli_output import emit, json_flag, table

__all__ = ["FEEDBACK_COMMANDS", "add_feedback_commands"]


def add_feedback_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("feedback", "results per gateway and class for a model")
    p.add_argument("name")
    p.add_argument("--version", default="")
    json_flag(p)

    p = command("export-hard-examples", "write hard examples as <label>/<image> folders")
    p.add_argument("name")
    p.add_argument("dir", type=Path)
    p.add_argument("--version", default="")
    json_flag(p)


def cmd_feedback(orch: Any, args: argparse.Namespace) -> int:
    summary = orch.feedback.summarize(args.name, args.version)

    def text() -> str:
        rows = []
        for g in summary.gateways:
            classes = ", ".join(
                f"{k}:{v}" for k, v in sorted(g.classes.items(), key=lambda kv: -kv[1])
            )
            mean = g.latency_sum_us // g.latency_count if g.latency_count else 0
            rows.append(
                (
                    g.gateway_id,
                    ",".join(sorted(g.versions)) or "-",
                    g.predictions,
                    g.errors,
                    f"{mean} us",
                    g.hard_examples,
                    g.dropped_batches,
                    classes or "-",
                )
            )
        header = (
            f"{summary.model_name} {summary.version or '(all versions)'}: {summary.batches} batches"
        )
        return (
            header
            + "\n"
            + table(
                rows,
                (
                    "GATEWAY",
                    "VERSIONS",
                    "PREDICTIONS",
                    "ERRORS",
                    "MEAN LATENCY",
                    "HARD EXAMPLES",
                    "DROPPED",
                    "CLASSES",
                ),
            )
        )

    emit(args, summary.to_dict(), text)
    return 0


def cmd_export(orch: Any, args: argparse.Namespace) -> int:
    written = orch.feedback.export_hard_examples(args.name, args.dir, args.version)
    emit(
        args,
        {"written": written, "dir": str(args.dir)},
        lambda: f"wrote {written} hard examples of {args.name} to {args.dir}",
    )
    return 0


FEEDBACK_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "feedback": cmd_feedback,
    "export-hard-examples": cmd_export,
}
