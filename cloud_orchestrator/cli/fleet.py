"""``edge-orchestrator gateways`` and ``assign``: the fleet inventory (desired vs running,
drift) and standing assignments for pull-mode gateways."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_orchestrator.cli.identity import IDENTITY_ACTIONS, add_identity_actions, identity_action
from cloud_orchestrator.cli.inputs import read_ca_file, read_token_file
from cloud_orchestrator.cli.output import ago, emit, json_flag, table

__all__ = ["FLEET_COMMANDS", "add_fleet_commands"]


def add_fleet_commands(
    command: Callable[[str, str], argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``common`` is the parent parser of the global options, for ``gateways``' actions."""
    p = command("gateways", "the fleet inventory (desired vs running, drift), or manage it")
    p.add_argument("--gateways", default="all", metavar="SELECTOR", help="which gateways")
    json_flag(p)
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
    json_flag(r)
    rm = gw.add_parser(
        "remove", help="forget a gateway and its credential (it may enroll again)", parents=[common]
    )
    rm.add_argument("gateway_id")
    add_identity_actions(gw, common)

    p = command("assign", "standing desired version for matching pull-mode gateways")
    p.add_argument("name")
    p.add_argument("--gateways", required=True, metavar="SELECTOR")
    p.add_argument("--version", default="latest", help="a version, or latest (follows publishes)")
    p.add_argument("--mode", default="activate", choices=["activate", "stage", "shadow"])
    p.add_argument("--remove", action="store_true", help="delete the assignment instead")


def _register(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.fleet.store import parse_labels

    token = read_token_file("--token-file", args.token_file) if args.token_file else args.token
    ca = read_ca_file("--ca", args.ca) if args.ca else ""
    info = orch.fleet.register(args.gateway_id, args.address, parse_labels(args.labels), token, ca)
    emit(
        args,
        {"id": info.id, "address": info.address, "labels": info.labels},
        lambda: f"registered gateway {info.id} ({info.mode})",
    )
    return 0


def _remove(orch: Any, gateway_id: str) -> int:
    from cloud_orchestrator.errors import NotFound

    forgot = orch.identities.forget(gateway_id)
    try:
        orch.fleet.remove(gateway_id)
    except NotFound:
        if not forgot:  # neither in the inventory nor enrolled
            raise
    print(f"removed gateway {gateway_id}")
    return 0


def cmd_gateways(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.fleet.store import Selector

    action = getattr(args, "gateways_action", None)
    if action == "register":
        return _register(orch, args)
    if action == "remove":
        return _remove(orch, args.gateway_id)
    if action in IDENTITY_ACTIONS:
        return identity_action(orch, args)
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
                ago(gateway.last_seen),
                "; ".join(cells) or "-",
            )
        )
    emit(
        args,
        data,
        lambda: table(
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


FLEET_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "gateways": cmd_gateways,
    "assign": cmd_assign,
}
