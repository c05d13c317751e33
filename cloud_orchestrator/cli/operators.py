"""``edge-orchestrator operators``: who may use the web console and its JSON API.

``operators add NAME --role admin|read-only`` prints the new token once (only its
sha256 is stored); ``operators list``; ``operators remove NAME`` (its sessions end)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from cloud_orchestrator.cli.output import emit, json_flag, table, when

__all__ = ["OPERATOR_COMMANDS", "add_operator_commands"]


def add_operator_commands(
    command: Callable[[str, str], argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = command("operators", "operators of the web console (list, add, remove)")
    json_flag(p)
    actions = p.add_subparsers(dest="operators_action", metavar="ACTION")
    add = actions.add_parser(
        "add", help="create an operator and print its token once", parents=[common]
    )
    add.add_argument("operator")
    add.add_argument("--role", default="read-only", choices=["admin", "read-only"])
    json_flag(add)
    remove = actions.add_parser(
        "remove", help="remove an operator (its sessions end)", parents=[common]
    )
    remove.add_argument("operator")


def cmd_operators(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.console.operators import Operators

    operators = Operators(orch.db)
    action = getattr(args, "operators_action", None)
    if action == "add":
        token = operators.add(args.operator, args.role)
        emit(
            args,
            {"operator": args.operator, "role": args.role, "token": token},
            lambda: f"operator {args.operator} ({args.role}); token (shown once):\n{token}",
        )
        return 0
    if action == "remove":
        operators.remove(args.operator)
        print(f"removed operator {args.operator}")
        return 0
    listed = operators.list()
    emit(
        args,
        [{"operator": o.name, "role": o.role, "created_at": o.created_at} for o in listed],
        lambda: table(
            [(o.name, o.role, when(o.created_at)) for o in listed], ("OPERATOR", "ROLE", "CREATED")
        ),
    )
    return 0


OPERATOR_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "operators": cmd_operators,
}
