"""``edge-orchestrator``: the model registry, fleet rollouts, pull-mode service and
feedback, as a thin wrapper over ``cloud_orchestrator.app.Orchestrator``.

Results go to stdout (``--json`` where scripts read them), errors to stderr with a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cloud_orchestrator import __version__
from cloud_orchestrator.db import DB_ENV, DEFAULT_DB_URL
from cloud_orchestrator.errors import OrchestratorError

ARTIFACTS_ENV = "EDGE_ORCHESTRATOR_ARTIFACTS"
KEYS_ENV = "EDGE_ORCHESTRATOR_TRUSTED_KEYS"
DEFAULT_ARTIFACTS = "orchestrator-artifacts"

logger = logging.getLogger("cloud_orchestrator")


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--db",
        default=default,
        metavar="URL",
        help=f"database URL: sqlite:///FILE or postgresql://USER@HOST:PORT/DB "
        f"[env {DB_ENV}; default {DEFAULT_DB_URL}]",
    )
    parser.add_argument(
        "--artifacts",
        default=default,
        type=Path,
        metavar="DIR",
        help=f"content-addressed bundle folder [env {ARTIFACTS_ENV}; default {DEFAULT_ARTIFACTS}]",
    )
    parser.add_argument(
        "--log-level", default=default, help="DEBUG, INFO, WARNING (default) or ERROR"
    )


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-orchestrator",
        description="Model registry, fleet rollouts, pull-mode service and feedback store "
        "for edge gateways (docs/orchestrator.md).",
    )
    parser.add_argument("--version", action="version", version=f"edge-orchestrator {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    _common(common, top=False)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    p = command("publish", "verify a signed bundle and add it to the registry")
    p.add_argument("bundle", type=Path, help="the .edgebundle file")
    p.add_argument(
        "--trusted-keys",
        default=None,
        help=f"comma-separated Ed25519 public keys or folders of *.pub [env {KEYS_ENV}]",
    )
    p.add_argument("--parent", default="", help="parent version (lineage); default: manifest")
    p.add_argument("--published-by", default="", help="who publishes (default: the user)")
    _json_flag(p)

    p = command("models", "list the models in the registry")
    _json_flag(p)

    p = command("versions", "list the versions of a model")
    p.add_argument("name")
    _json_flag(p)

    p = command("gateways", "the fleet inventory (desired vs running, drift), or manage it")
    p.add_argument("--gateways", default="all", metavar="SELECTOR", help="which gateways")
    _json_flag(p)
    gw = p.add_subparsers(dest="gateways_action", metavar="ACTION")
    r = gw.add_parser("register", help="add or change a gateway", parents=[common])
    r.add_argument("gateway_id")
    r.add_argument(
        "--address",
        default="",
        help="HOST:PORT of its management (ModelService) port; empty for a pull-only gateway",
    )
    r.add_argument("--labels", default="", help="KEY=VALUE,... such as site=berlin,hardware=rpi4")
    r.add_argument("--token-file", type=Path, default=None, help="file with its management token")
    r.add_argument("--token", default="", help="management token (prefer --token-file)")
    r.add_argument("--ca", type=Path, default=None, help="PEM CA of its TLS certificate")
    _json_flag(r)
    rm = gw.add_parser("remove", help="forget a gateway", parents=[common])
    rm.add_argument("gateway_id")

    p = command("assign", "standing desired version for matching pull-mode gateways")
    p.add_argument("name")
    p.add_argument("--gateways", required=True, metavar="SELECTOR")
    p.add_argument("--version", default="latest", help="a version, or latest (follows publishes)")
    p.add_argument("--mode", default="activate", choices=["activate", "stage", "shadow"])
    p.add_argument("--remove", action="store_true", help="delete the assignment instead")

    p = command("deploy", "roll a version out to gateways, wave by wave")
    p.add_argument("name")
    p.add_argument("version", help="a published version, or latest")
    p.add_argument(
        "--gateways", required=True, metavar="SELECTOR", help="all, KEY=VALUE[,KEY!=VALUE], id=A|B"
    )
    p.add_argument("--strategy", default="all", help="all | canary:N | waves:1,10%%,50%%,100%%")
    p.add_argument("--max-parallel", type=int, default=4, metavar="K")
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
    _json_flag(p)

    p = command("rollouts", "list rollouts")
    _json_flag(p)

    p = command("rollout", "show one rollout per gateway (or resume/cancel it)")
    p.add_argument("rollout_id")
    p.add_argument("--events", action="store_true", help="also list what each orchestrator did")
    p.add_argument("--cancel", action="store_true", help="stop it after the current gateway")
    p.add_argument(
        "--resume",
        action="store_true",
        help="run it here to its end (when no other process owns it)",
    )
    _json_flag(p)

    p = command("serve", "run the OrchestratorService (pull mode, feedback) and rollouts")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50070, help="gRPC port (0 = any free)")
    p.add_argument(
        "--gateway-token-file",
        type=Path,
        default=None,
        help="file with the fleet token gateways must send",
    )
    p.add_argument("--tls-cert", type=Path, default=None)
    p.add_argument("--tls-key", type=Path, default=None)
    p.add_argument("--instance-id", default="", help="name in rollout events (default host-pid)")
    p.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="how long a rollout stays ours without renewal",
    )
    p.add_argument("--poll-seconds", type=float, default=2.0, help="rollout claim interval")
    p.add_argument("--heartbeat-seconds", type=float, default=10.0)
    p.add_argument("--desired-poll-seconds", type=float, default=1.0)
    p.add_argument("--no-rollouts", action="store_true", help="serve gateways only")

    p = command("feedback", "results per gateway and class for a model")
    p.add_argument("name")
    p.add_argument("--version", default="")
    _json_flag(p)

    p = command("export-hard-examples", "write hard examples as <label>/<image> folders")
    p.add_argument("name")
    p.add_argument("dir", type=Path)
    p.add_argument("--version", default="")
    _json_flag(p)
    return parser


def _when(stamp: float) -> str:
    if not stamp:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _ago(stamp: float) -> str:
    if not stamp:
        return "never"
    seconds = max(0, int(time.time() - stamp))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _emit(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        print(text())


def _trusted_keys(value: str | None) -> list[Path]:
    raw = value if value is not None else os.environ.get(KEYS_ENV, "")
    return [Path(p.strip()) for p in raw.split(",") if p.strip()]


# -- commands --------------------------------------------------------------------------------


def cmd_publish(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.registry import load_trusted_keys

    keys = load_trusted_keys(_trusted_keys(args.trusted_keys))
    info = orch.registry.publish(args.bundle, keys, args.published_by, args.parent)
    _emit(
        args,
        info.to_dict(),
        lambda: (
            f"published {info.model} version {info.version} (sha256 {info.sha256[:16]}.., "
            f"{info.size_bytes} bytes, signed by {info.key_id})"
        ),
    )
    return 0


def cmd_models(orch: Any, args: argparse.Namespace) -> int:
    models = orch.registry.models()
    _emit(
        args,
        [m.__dict__ for m in models],
        lambda: _table(
            [(m.name, m.versions, m.latest_version, _when(m.latest_published_at)) for m in models],
            ("MODEL", "VERSIONS", "LATEST", "PUBLISHED"),
        ),
    )
    return 0


def cmd_versions(orch: Any, args: argparse.Namespace) -> int:
    versions = orch.registry.versions(args.name)

    def metric(v: Any) -> str:
        top1 = v.evaluation.get("top1")
        return f"{top1:.4f}" if isinstance(top1, int | float) else "-"

    _emit(
        args,
        [v.to_dict() for v in versions],
        lambda: _table(
            [
                (
                    v.version,
                    v.sha256[:12],
                    v.size_bytes,
                    metric(v),
                    v.parent_version or "-",
                    v.key_id,
                    v.published_by,
                    _when(v.published_at),
                )
                for v in versions
            ],
            ("VERSION", "SHA256", "BYTES", "TOP1", "PARENT", "KEY", "BY", "PUBLISHED"),
        ),
    )
    return 0


def cmd_gateways(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.fleet import Selector, parse_labels

    action = getattr(args, "gateways_action", None)
    if action == "register":
        token = (
            args.token_file.read_text(encoding="utf-8").strip() if args.token_file else args.token
        )
        ca = args.ca.read_text(encoding="utf-8") if args.ca else ""
        info = orch.fleet.register(
            args.gateway_id, args.address, parse_labels(args.labels), token, ca
        )
        _emit(
            args,
            {"id": info.id, "address": info.address, "labels": info.labels},
            lambda: f"registered gateway {info.id} ({info.mode})",
        )
        return 0
    if action == "remove":
        orch.fleet.remove(args.gateway_id)
        print(f"removed gateway {args.gateway_id}")
        return 0
    rows = []
    data = []
    color = sys.stdout.isatty() and not args.json
    for gateway in orch.fleet.gateways(Selector.parse(args.gateways)):
        desired = {d.model_name: d.version for d in orch.fleet.desired(gateway)}
        models = sorted(set(desired) | set(gateway.running))
        entries = []
        for model in models:
            running = gateway.running[model].active_version if model in gateway.running else ""
            want = desired.get(model, "")
            drift = bool(want) and want != running
            entries.append({"model": model, "desired": want, "running": running, "drift": drift})
        data.append(
            {
                "id": gateway.id,
                "mode": gateway.mode,
                "address": gateway.address,
                "labels": gateway.labels,
                "last_seen": gateway.last_seen,
                "models": entries,
                "drift": any(e["drift"] for e in entries),
            }
        )
        cells = []
        for e in entries:
            cell = f"{e['model']}={e['running'] or '-'}"
            if e["drift"]:
                cell += f" (want {e['desired']}) DRIFT"
                if color:
                    cell = f"\033[1;31m{cell}\033[0m"
            cells.append(cell)
        labels = ",".join(f"{k}={v}" for k, v in sorted(gateway.labels.items())) or "-"
        rows.append(
            (
                gateway.id,
                gateway.mode,
                gateway.address or "-",
                labels,
                _ago(gateway.last_seen),
                "; ".join(cells) or "-",
            )
        )
    _emit(
        args,
        data,
        lambda: _table(
            rows,
            (
                "GATEWAY",
                "MODE",
                "ADDRESS",
                "LABELS",
                "LAST SEEN",
                "MODELS (running, desired when different)",
            ),
        ),
    )
    return 0


def cmd_assign(orch: Any, args: argparse.Namespace) -> int:
    if args.remove:
        orch.fleet.unassign(args.name, args.gateways)
        print(f"removed the assignment of {args.name} to {args.gateways}")
        return 0
    orch.fleet.assign(args.name, args.gateways, args.version, args.mode.upper())
    print(f"gateways matching {args.gateways} should run {args.name} {args.version}")
    return 0


def _print_rollout(record: Any, events: list[dict[str, Any]] | None = None) -> str:
    lines = [
        f"rollout {record.id}: {record.model_name} version {record.version} -> {record.selector}",
        f"  strategy {record.strategy}, max parallel {record.max_parallel}, max failures "
        f"{record.max_failures}, watch {record.watch_seconds:g} s",
        f"  state {record.state}, wave {min(record.current_wave + 1, record.wave_count)} of "
        f"{record.wave_count}" + (f", owner {record.owner}" if record.owner else ""),
    ]
    if record.reason:
        lines.append(f"  reason: {record.reason}")
    lines.append(
        _table(
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
    if events:
        lines.append("events:")
        for e in events:
            lines.append(
                f"  {_when(e['at'])} {e['owner']} {e['kind']} {e['gateway_id']} "
                f"{e['detail']}".rstrip()
            )
    return "\n".join(lines)


def cmd_deploy(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.app import default_instance_id
    from cloud_orchestrator.progress import ProgressObserver
    from cloud_orchestrator.rollout_runner import RunnerConfig

    owner = default_instance_id()
    record = orch.rollouts.create(
        args.name,
        args.version,
        args.gateways,
        args.strategy,
        args.max_parallel,
        args.max_failures,
        args.watch_seconds,
        created_by=owner,
        lease_seconds=0.0 if args.detach else args.lease_seconds,
    )
    if args.detach:
        _emit(
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
    _emit(args, final.to_dict(), lambda: _print_rollout(final))
    return 0 if final.state == "SUCCEEDED" else 1


def cmd_rollouts(orch: Any, args: argparse.Namespace) -> int:
    records = orch.rollouts.recent()
    _emit(
        args,
        [r.to_dict() for r in records],
        lambda: _table(
            [
                (
                    r.id,
                    r.model_name,
                    r.version,
                    r.strategy,
                    r.state,
                    f"{sum(t.state == 'SUCCEEDED' for t in r.targets)}/{len(r.targets)}",
                    _when(r.created_at),
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
    if args.resume:
        from cloud_orchestrator.app import default_instance_id
        from cloud_orchestrator.rollout_runner import RunnerConfig

        asyncio.run(orch.runner(RunnerConfig(default_instance_id())).run_one(args.rollout_id))
    record = orch.rollouts.get(args.rollout_id)
    events = orch.rollouts.events(args.rollout_id) if args.events else None
    data = record.to_dict()
    if events is not None:
        data["events"] = events
    _emit(args, data, lambda: _print_rollout(record, events))
    return 0


def cmd_serve(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.app import ServeOptions, serve

    token = ""
    if args.gateway_token_file is not None:
        token = args.gateway_token_file.read_text(encoding="utf-8").strip()
    token = token or os.environ.get("EDGE_ORCHESTRATOR_GATEWAY_TOKEN", "")
    options = ServeOptions(
        host=args.host,
        port=args.port,
        gateway_token=token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        instance_id=args.instance_id,
        lease_seconds=args.lease_seconds,
        poll_seconds=args.poll_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        desired_poll_seconds=args.desired_poll_seconds,
        run_rollouts=not args.no_rollouts,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(orch, options, stop)

    asyncio.run(run())
    return 0


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
            + _table(
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

    _emit(args, summary.to_dict(), text)
    return 0


def cmd_export(orch: Any, args: argparse.Namespace) -> int:
    written = orch.feedback.export_hard_examples(args.name, args.dir, args.version)
    _emit(
        args,
        {"written": written, "dir": str(args.dir)},
        lambda: f"wrote {written} hard examples of {args.name} to {args.dir}",
    )
    return 0


COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "publish": cmd_publish,
    "models": cmd_models,
    "versions": cmd_versions,
    "gateways": cmd_gateways,
    "assign": cmd_assign,
    "deploy": cmd_deploy,
    "rollouts": cmd_rollouts,
    "rollout": cmd_rollout,
    "serve": cmd_serve,
    "feedback": cmd_feedback,
    "export-hard-examples": cmd_export,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = (args.log_level or ("INFO" if args.command == "serve" else "WARNING")).upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    db_url = args.db or os.environ.get(DB_ENV, "") or DEFAULT_DB_URL
    artifacts = args.artifacts or Path(os.environ.get(ARTIFACTS_ENV, "") or DEFAULT_ARTIFACTS)
    try:
        from cloud_orchestrator.app import Orchestrator

        orch = Orchestrator(db_url, artifacts)
    except Exception as exc:  # a bad URL, an unreachable server, a missing driver
        print(f"edge-orchestrator: error: cannot open database {db_url}: {exc}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](orch, args)
    except OrchestratorError as exc:
        print(f"edge-orchestrator: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"edge-orchestrator: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        orch.close()


if __name__ == "__main__":
    sys.exit(main())
