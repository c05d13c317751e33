"""``edge-orchestrator enrollment-tokens`` and the identity actions of ``gateways``
(identities, admit, reject, revoke): who may enroll, and which enrolled gateways may act
(cloud_orchestrator/fleet/identity.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_orchestrator.cli.output import emit, json_flag, table, when
from cloud_orchestrator.errors import InvalidRequest

__all__ = [
    "IDENTITY_ACTIONS",
    "IDENTITY_COMMANDS",
    "add_identity_actions",
    "add_identity_commands",
]


def add_identity_commands(
    command: Callable[[str, str], argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """``common`` is the parent parser of the global options, for the actions."""
    p = command("enrollment-tokens", "tokens that let new pull gateways enroll")
    json_flag(p)
    actions = p.add_subparsers(dest="tokens_action", metavar="ACTION")
    c = actions.add_parser(
        "create", help="create a token (printed once; only its hash is kept)", parents=[common]
    )
    c.add_argument("--one-time", action="store_true", help="valid for one enrollment only")
    c.add_argument(
        "--auto-admit",
        action="store_true",
        help="admit gateways enrolling with it at once (default: they wait for `gateways admit`)",
    )
    c.add_argument("--labels", default="", help="KEY=VALUE,... given to gateways enrolling with it")
    c.add_argument(
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the token to FILE (mode 600) instead of printing it",
    )
    json_flag(c)
    json_flag(actions.add_parser("list", help="the tokens (never their values)", parents=[common]))
    r = actions.add_parser("revoke", help="stop new enrollments with a token", parents=[common])
    r.add_argument("token_id")


def add_identity_actions(gateways: Any, common: argparse.ArgumentParser) -> None:
    """``gateways identities|admit|reject|revoke`` (``gateways`` is its subparsers)."""
    i = gateways.add_parser(
        "identities", help="enrolled gateways and their admission", parents=[common]
    )
    json_flag(i)
    for name, text in (
        ("admit", "let an enrolled gateway act (PENDING or REJECTED -> ADMITTED)"),
        ("reject", "refuse a pending gateway"),
        ("revoke", "its credential stops working at its next call (a stolen board)"),
    ):
        action = gateways.add_parser(name, help=text, parents=[common])
        action.add_argument("gateway_id")


def _write_token(path: Path, token: str) -> None:
    from edge_contracts.atomic_files import write_bytes_atomic

    if path.is_dir():
        raise InvalidRequest(f"--output {path}: is a folder; give a file name")
    write_bytes_atomic(path, (token + "\n").encode(), mode=0o600)


def cmd_enrollment_tokens(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.fleet.store import parse_labels

    action = getattr(args, "tokens_action", None) or "list"
    if action == "create":
        created = orch.identities.create_token(
            args.one_time, args.auto_admit, parse_labels(args.labels)
        )
        info = created.info
        kind = ("one-time" if info.one_time else "fleet-wide") + (
            ", auto-admit" if info.auto_admit else ", admission by an operator"
        )
        if args.output is not None:
            _write_token(args.output, created.token)
        shown = "" if args.output is not None else created.token
        emit(
            args,
            {
                "id": info.id,
                "token": shown,
                "one_time": info.one_time,
                "auto_admit": info.auto_admit,
                "labels": info.labels,
            },
            lambda: (
                f"created enrollment token {info.id} ({kind}); "
                + (f"written to {args.output}" if args.output else f"token: {created.token}")
            ),
        )
        return 0
    if action == "revoke":
        orch.identities.revoke_token(args.token_id)
        print(f"revoked enrollment token {args.token_id}; gateways enrolled with it keep working")
        return 0
    tokens = orch.identities.tokens()
    emit(
        args,
        [vars(t) for t in tokens],
        lambda: table(
            [
                (
                    t.id,
                    "one-time" if t.one_time else "fleet-wide",
                    "auto" if t.auto_admit else "operator",
                    ",".join(f"{k}={v}" for k, v in sorted(t.labels.items())) or "-",
                    str(t.uses),
                    "revoked" if t.revoked else "valid",
                    when(t.created_at),
                )
                for t in tokens
            ],
            ("TOKEN", "KIND", "ADMISSION", "LABELS", "USES", "STATE", "CREATED"),
        ),
    )
    return 0


def identity_action(orch: Any, args: argparse.Namespace) -> int:
    action = args.gateways_action
    if action == "identities":
        found = orch.identities.identities()
        emit(
            args,
            [vars(i) for i in found],
            lambda: table(
                [
                    (i.gateway_id, i.state, i.enrollment_token_id, when(i.enrolled_at))
                    for i in found
                ],
                ("GATEWAY", "STATE", "ENROLLED WITH", "ENROLLED"),
            ),
        )
        return 0
    gateway_id = args.gateway_id
    info = getattr(orch.identities, action)(gateway_id)
    if action == "admit":
        # In the inventory at once, with its enrollment token's labels.
        orch.fleet.hello(gateway_id, orch.identities.token_labels(gateway_id), "")
    print(f"gateway {gateway_id} is {info.state}")
    return 0


IDENTITY_ACTIONS = ("identities", "admit", "reject", "revoke")

IDENTITY_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "enrollment-tokens": cmd_enrollment_tokens,
}
