"""``edge-orchestrator deploy``, ``rollouts`` and ``rollout``: start, list, inspect,
resume and cancel fleet rollouts."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from cloud_orchestrator.cli.output import emit, json_flag, table, when

__all__ = ["ROLLOUT_COMMANDS", "add_rollout_commands"]


def add_rollout_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("deploy", "roll a version out to gateways, wave by wave")
    p.add_argument("name", nargs="?")
    p.add_argument("version", nargs="?", help="a published version, or latest")
    p.add_argument("--gateways", metavar="SELECTOR", help="all, KEY=VALUE[,KEY!=VALUE], id=A|B")
    p.add_argument(
        "--retry-failed",
        metavar="ROLLOUT_ID",
        help="run a halted or finished rollout again for its FAILED, SKIPPED, "
        "ROLLED_BACK and GATE_FAILED gateways (instead of NAME VERSION --gateways)",
    )
    p.add_argument("--strategy", default="all", help="all | canary:N | waves:1,10%%,50%%,100%%")
    # deploy's arguments are required unless --retry-failed is given: checked in
    # cmd_deploy, which reports a missing one through this parser (one line, exit 2).
    p.set_defaults(deploy_parser=p)
    p.add_argument("--max-parallel", type=int, default=4, metavar="K")
    p.add_argument(
        "--rate",
        default="0",
        metavar="N/min",
        help="start at most N gateways per minute (also N/s, N/h; default: no limit)",
    )
    p.add_argument(
        "--max-failures",
        default="0",
        help="failures a wave may have before the rollout halts and rolls the wave "
        "back: a count or a share such as 20%% (default 0)",
    )
    p.add_argument(
        "--watch-seconds",
        type=float,
        default=10.0,
        help="healthy time a gateway must serve the version (default 10)",
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="only record the rollout; an `edge-orchestrator serve` runs it",
    )
    p.add_argument("--lease-seconds", type=float, default=30.0)
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    add_gate_arguments(p)
    json_flag(p)

    p = command("rollouts", "list rollouts")
    json_flag(p)

    p = command("rollout", "show one rollout per gateway (or resume/cancel it)")
    p.add_argument("rollout_id")
    p.add_argument("--events", action="store_true", help="also list what each orchestrator did")
    p.add_argument("--cancel", action="store_true", help="stop it after the current gateway")
    p.add_argument(
        "--resume",
        action="store_true",
        help="run it here to its end (when no other process owns it)",
    )
    p.add_argument(
        "--activate",
        action="store_true",
        help="activate a --stage-only rollout's staged version, wave by wave, and run it here",
    )
    json_flag(p)


def add_gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gate",
        choices=("shadow",),
        help="shadow: each wave runs the version in shadow first and activates it only "
        "when the evidence holds (docs/rollouts.md)",
    )
    amount = p.add_mutually_exclusive_group()
    amount.add_argument(
        "--evidence-requests",
        type=int,
        metavar="N",
        help="shadowed requests each gateway needs before the gate judges (default 200)",
    )
    amount.add_argument(
        "--evidence-minutes", type=float, metavar="M", help="collect evidence for M minutes"
    )
    p.add_argument("--min-agreement", type=float, default=0.97, help="default 0.97")
    p.add_argument(
        "--max-confidence-shift",
        type=float,
        default=0.1,
        help="Jensen-Shannon distance of the top-1 confidence deciles (default 0.1)",
    )
    p.add_argument(
        "--max-latency-ratio", type=float, default=1.5, help="p95 candidate/active (default 1.5)"
    )
    p.add_argument(
        "--latency-floor-ms",
        type=float,
        default=5.0,
        help="p95 times under this count as this for the ratio (default 5: noise below)",
    )
    p.add_argument(
        "--stage-only",
        action="store_true",
        help="download and verify everywhere; activate later with `rollout ID --activate`",
    )
    p.add_argument(
        "--window",
        action="append",
        default=[],
        metavar="[SELECTOR@]HH:MM-HH:MM",
        help="activate only in this window of the gateway's local time (download any time); "
        "repeat per label selector, the first match applies",
    )


def _gate(args: argparse.Namespace) -> Any:
    from cloud_orchestrator.rollouts.gates import GateConfig

    tuned = args.evidence_requests or args.evidence_minutes
    if not args.gate:
        if tuned:
            args.deploy_parser.error("--evidence-requests/--evidence-minutes need --gate shadow")
        return None
    return GateConfig(
        args.gate,
        args.evidence_requests or 0,
        args.evidence_minutes or 0.0,
        args.min_agreement,
        args.max_confidence_shift,
        args.max_latency_ratio,
        latency_floor_ms=args.latency_floor_ms,
    )


def _print_rollout(record: Any, events: list[dict[str, Any]] | None = None) -> str:
    lines = [
        f"rollout {record.id}: {record.model_name} version {record.version} -> {record.selector}",
        f"  strategy {record.strategy}, max parallel {record.max_parallel}"
        + (f", rate {record.rate_per_minute:g}/min" if record.rate_per_minute else "")
        + f", max failures {record.max_failures}, watch {record.watch_seconds:g} s",
        f"  state {record.state}, wave {min(record.current_wave + 1, record.wave_count)} of "
        f"{record.wave_count}" + (f", owner {record.owner}" if record.owner else ""),
    ]
    if record.gate:
        from cloud_orchestrator.rollouts.gates import GateConfig

        config = GateConfig.from_json(record.gate)
        lines.append(f"  {config.describe() if config else ''}")
    if record.stage_only:
        lines.append("  stage only: activate with `edge-orchestrator rollout ID --activate`")
    if record.windows:
        lines.append(f"  windows (gateway local time): {record.windows}")
    if record.reason:
        lines.append(f"  reason: {record.reason}")
    lines.append(
        table(
            [
                (
                    t.gateway_id,
                    t.wave + 1,
                    t.state,
                    t.previous_version or "-",
                    t.attempts,
                    t.bytes_sent,
                    t.reason or "",
                )
                for t in record.targets
            ],
            ("GATEWAY", "WAVE", "STATE", "PREVIOUS", "ATTEMPTS", "BYTES SENT", "REASON"),
        )
    )
    from cloud_orchestrator.cli.rollout_evidence import evidence_table

    evidence = evidence_table(record)
    if evidence:
        lines.append("evidence:")
        lines.append(evidence)
    if events:
        lines.append("events:")
        for e in events:
            lines.append(
                f"  {when(e['at'])} {e['owner']} {e['kind']} {e['gateway_id']} "
                f"{e['detail']}".rstrip()
            )
    return "\n".join(lines)


def cmd_deploy(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.app import default_instance_id
    from cloud_orchestrator.rollouts.pacing import parse_rate
    from cloud_orchestrator.rollouts.progress import ProgressObserver
    from cloud_orchestrator.rollouts.runner import RunnerConfig

    owner = default_instance_id()
    lease = 0.0 if args.detach else args.lease_seconds
    if args.retry_failed:
        if args.name or args.version or args.gateways:
            args.deploy_parser.error(
                "--retry-failed ROLLOUT_ID takes no NAME, VERSION or --gateways"
            )
        record = orch.rollouts.retry_failed(args.retry_failed, owner, lease)
    else:
        given = {"name": args.name, "version": args.version, "--gateways": args.gateways}
        missing = [name for name, value in given.items() if not value]
        if missing:
            args.deploy_parser.error(f"the following arguments are required: {', '.join(missing)}")
        record = orch.rollouts.create(
            args.name,
            args.version,
            args.gateways,
            args.strategy,
            args.max_parallel,
            args.max_failures,
            args.watch_seconds,
            created_by=owner,
            lease_seconds=lease,
            rate_per_minute=parse_rate(args.rate),
            gate=_gate(args),
            stage_only=args.stage_only,
            windows=args.window,
        )
    if args.detach:
        emit(
            args,
            record.to_dict(),
            lambda: (
                f"rollout {record.id} recorded; an `edge-orchestrator serve` process will run it"
            ),
        )
        return 0
    show = not args.no_progress and not args.json
    observer = ProgressObserver(record, enabled=show)
    runner = orch.runner(RunnerConfig(owner, args.lease_seconds), observer)
    try:
        final = asyncio.run(runner.run_one(record.id))
    finally:
        observer.close()
    emit(args, final.to_dict(), lambda: _print_rollout(final))
    return 0 if final.state in ("SUCCEEDED", "STAGED") else 1


def cmd_rollouts(orch: Any, args: argparse.Namespace) -> int:
    records = orch.rollouts.recent()
    emit(
        args,
        [r.to_dict() for r in records],
        lambda: table(
            [
                (
                    r.id,
                    r.model_name,
                    r.version,
                    r.strategy,
                    r.state,
                    f"{r.succeeded}/{r.total}",
                    when(r.created_at),
                )
                for r in records
            ],
            ("ROLLOUT", "MODEL", "VERSION", "STRATEGY", "STATE", "DONE", "CREATED"),
        ),
    )
    return 0


def cmd_rollout(orch: Any, args: argparse.Namespace) -> int:
    if args.cancel:
        orch.rollouts.cancel(args.rollout_id)
    if args.resume or args.activate:
        from cloud_orchestrator.app import default_instance_id
        from cloud_orchestrator.rollouts.runner import RunnerConfig

        owner = default_instance_id()
        if args.activate:
            orch.rollouts.activate_staged(args.rollout_id, owner, RunnerConfig(owner).lease_seconds)
        asyncio.run(orch.runner(RunnerConfig(owner)).run_one(args.rollout_id))
    record = orch.rollouts.get(args.rollout_id)
    events = orch.rollouts.events(args.rollout_id) if args.events else None
    data = record.to_dict()
    from cloud_orchestrator.rollouts.evidence_view import wave_evidence

    data["wave_evidence"] = wave_evidence(record)
    if events is not None:
        data["events"] = events
    emit(args, data, lambda: _print_rollout(record, events))
    return 0 if not args.activate or record.state == "SUCCEEDED" else 1


ROLLOUT_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "deploy": cmd_deploy,
    "rollouts": cmd_rollouts,
    "rollout": cmd_rollout,
}
