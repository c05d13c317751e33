"""``edge-orchestrator feedback`` and ``export-hard-examples``: what gateways reported
about a model's predictions."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_orchestrator.cli.output import emit, json_flag, table
from cloud_orchestrator.errors import OrchestratorError

__all__ = ["FEEDBACK_COMMANDS", "add_feedback_commands"]


class NothingToExport(OrchestratorError):
    """export-hard-examples found nothing to write (exit status 1, the reason on stderr)."""


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
    from cloud_orchestrator.feedback.explain import why_no_batches

    summary = orch.feedback.summarize(args.name, args.version)

    def text() -> str:
        header = (
            f"{summary.model_name} {summary.version or '(all versions)'}: {summary.batches} batches"
        )
        if not summary.batches:  # an empty table would not say where results come from
            return f"{header}: {why_no_batches(orch, args.name, args.version)}"
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
    """Exit 0 when DIR holds the selected hard examples (written now or before), 1 with
    the reason when there is nothing to export; DIR is then left untouched."""
    from cloud_orchestrator.feedback.explain import why_no_hard_examples

    counts = orch.feedback.hard_example_counts(args.name)
    stored = counts.get(args.version, 0) if args.version else sum(counts.values())
    if not stored:
        reason = why_no_hard_examples(orch, args.name, args.version)
        result = {"written": 0, "already_there": 0, "dir": str(args.dir), "reason": reason}
        if args.json:  # scripts read the counts and the reason from stdout
            emit(args, result, lambda: reason)
        raise NothingToExport(f"nothing exported: {reason}")
    written = orch.feedback.export_hard_examples(args.name, args.dir, args.version)
    there = max(0, stored - written)
    emit(
        args,
        {"written": written, "already_there": there, "dir": str(args.dir), "reason": ""},
        lambda: (
            f"wrote {written} hard examples of {args.name} to {args.dir}"
            + (f" ({there} already there)" if there else "")
        ),
    )
    return 0


FEEDBACK_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "feedback": cmd_feedback,
    "export-hard-examples": cmd_export,
}
