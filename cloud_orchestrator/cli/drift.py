"""``edge-orchestrator drift MODEL``: drift per gateway, site and version (docs/drift.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cloud_orchestrator.cli.output import ago, emit, json_flag, table

__all__ = ["DRIFT_COMMANDS", "add_drift_commands"]


def _distance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not within (0, 1]")
    return value


def add_drift_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command(
        "drift",
        "drift of a model's predictions per gateway, site and version, from the gateways' "
        "reports; drifting gateways are marked",
    )
    p.add_argument("name", help="model name")
    p.add_argument("--version", default="", help="one version (default: all)")
    p.add_argument("--selector", default="all", help="gateways, e.g. site=berlin (default: all)")
    p.add_argument(
        "--threshold",
        type=_distance,
        help="mark gateways whose score is above this as drifting (default: each "
        "gateway's own --drift-threshold verdict)",
    )
    json_flag(p)


def _text(summary: Any) -> str:
    if not summary.gateways:
        return (
            f"{summary.model_name}: no drift reports (gateways report drift for versions "
            "whose bundle carries a reference: model-tools evaluate --record before package)"
        )
    rows = [
        (
            g.gateway_id + (" *" if g.drifting and g.active else ""),
            g.site,
            g.version + ("" if g.active else " (inactive)"),
            f"{g.score:.3f}",
            f"{g.class_distance:.3f}",
            f"{g.confidence_distance:.3f}",
            f"{g.low_margin_share:.3f}/{g.reference_low_margin_share:.3f}",
            str(g.window),
            ",".join(f"{k}:{v}" for k, v in sorted(g.dropped.items())) or "-",
            ago(g.measured_at),
        )
        for g in summary.gateways
    ]
    header = (
        "GATEWAY",
        "SITE",
        "VERSION",
        "SCORE",
        "CLASSES",
        "CONFIDENCE",
        "LOW MARGIN",
        "WINDOW",
        "DROPPED",
        "MEASURED",
    )

    def groups(title: str, items: dict[str, Any]) -> str:
        lines = [
            (k, v.gateways, v.drifting, f"{v.max_score:.3f}") for k, v in sorted(items.items())
        ]
        return table(lines, (title, "GATEWAYS", "DRIFTING", "MAX SCORE"))

    verdict = "their own threshold" if summary.threshold is None else f"> {summary.threshold:g}"
    return "\n\n".join(
        [
            f"{summary.model_name}: {summary.drifting} drifting gateways (* = drifting, "
            f"{verdict})\n" + table(rows, header),
            groups("SITE", summary.sites),
            groups("VERSION", summary.versions),
        ]
    )


def cmd_drift(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.feedback.drift import drift_summary
    from cloud_orchestrator.fleet.selector import Selector

    summary = drift_summary(
        orch.db, args.name, args.version, Selector.parse(args.selector), args.threshold
    )
    emit(args, summary.to_dict(), lambda: _text(summary))
    return 0


DRIFT_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {"drift": cmd_drift}
