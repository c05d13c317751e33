"""``edge-client``: the command line over :class:`~edge_client.EdgeClient`.

Exit codes: 0 success (``health``: SERVING), 1 a failed call, an unreadable file or
NOT_SERVING, 2 a usage error. Results go to stdout, errors to stderr as
``edge-client: error: <CODE>: <details>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge_client import formatting
from edge_client.channel_config import DEFAULT_TIMEOUT
from edge_client.client import EdgeClient
from edge_client.core_logs import core_logs_silenced
from edge_client.errors import EdgeClientError
from edge_client.tls import SSL_TARGET_NAME_OVERRIDE, channel_credentials
from edge_client.waiting import FAST_RECONNECT, wait_until_serving
from edge_contracts import __version__
from edge_contracts.cli.parser import OneLineParser

__all__ = ["DEFAULT_TARGET", "build_parser", "main"]

PROG = "edge-client"
DEFAULT_TARGET = "127.0.0.1:50051"

Command = Callable[[EdgeClient, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``argv`` without the program name); returns the exit code."""
    parser = build_parser(os.environ)
    args = parser.parse_args(argv)
    try:
        token = read_token_file(args.token_file) if args.token_file else args.token
    except ValueError as err:
        return _fail(str(err))
    if not args.ca_cert and (args.client_cert or args.client_key or args.server_name):
        parser.error("--client-cert, --client-key and --server-name need --ca-cert (TLS)")
    if bool(args.client_cert) != bool(args.client_key):
        parser.error("--client-cert and --client-key go together")
    with core_logs_silenced(os.environ):
        return _run(args, token)


def _run(args: argparse.Namespace, token: str) -> int:
    """Connect and run the command; every failure becomes one line and exit 1."""
    try:
        credentials = (
            channel_credentials(args.ca_cert, args.client_cert, args.client_key)
            if args.ca_cert
            else None
        )
        options = [(SSL_TARGET_NAME_OVERRIDE, args.server_name)] if args.server_name else []
        if getattr(args, "wait", 0):
            options.extend(FAST_RECONNECT)
        with EdgeClient(
            args.target,
            timeout=args.timeout,
            credentials=credentials,
            token=token or None,
            options=options,
        ) as client:
            command: Command = args.command
            return command(client, args)
    except EdgeClientError as err:
        return _fail(formatting.error_message(err, args.target))
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as err:
        if err.filename is None:
            return _fail(str(err))
        return _fail(f"cannot read {err.filename}: {err.strerror or err}")
    except ValueError as err:  # an argument the client refused, or a malformed answer
        return _fail(str(err))
    except KeyboardInterrupt:
        return 130


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The argument parser; defaults come from ``environ`` (EDGE_TARGET, EDGE_TOKEN).

    Connection options are accepted before or after the command.
    """
    parser = OneLineParser(prog=PROG, description="Talk to an edge inference gateway over gRPC.")
    # The same version source as edge-server's: both ship in one distribution.
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_connection_options(parser, environ, suppress=False)
    shared = OneLineParser(add_help=False)
    _add_connection_options(shared, environ, suppress=True)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in (_add_predict, _add_health, _add_models, _add_push, _add_activate, _add_rollback):
        add(commands, shared)
    return parser


def _add_connection_options(
    parser: argparse.ArgumentParser, environ: Mapping[str, str], *, suppress: bool
) -> None:
    # After the command, options default to SUPPRESS so they only override when given.
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    target = environ.get("EDGE_TARGET", DEFAULT_TARGET)
    parser.add_argument(
        "--target",
        default=default(target),
        help=f"gateway address HOST:PORT (default: $EDGE_TARGET or {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=default(DEFAULT_TIMEOUT),
        help=f"deadline of each call in seconds (default: {DEFAULT_TIMEOUT})",
    )
    parser.add_argument(
        "--token",
        default=default(environ.get("EDGE_TOKEN", "")),
        help="management bearer token for models/push/activate/rollback (default: $EDGE_TOKEN)",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        default=default(None),
        help="read the management token from FILE (keeps it out of `ps`; wins over --token)",
    )
    tls = parser.add_argument_group("TLS (enabled by --ca-cert)")
    tls.add_argument(
        "--ca-cert", metavar="PEM", default=default(None), help="CA certificate of the gateway"
    )
    tls.add_argument(
        "--client-cert", metavar="PEM", default=default(None), help="client cert for mutual TLS"
    )
    tls.add_argument(
        "--client-key", metavar="PEM", default=default(None), help="key of --client-cert"
    )
    tls.add_argument(
        "--server-name",
        metavar="NAME",
        default=default(None),
        help="name to check the gateway's certificate against (instead of the target host)",
    )


def _add_predict(commands: Any, shared: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "predict", parents=[shared], help="classify image files, one prediction each"
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="encoded image file")
    p.add_argument("--model", default="", help="model name (default: the gateway's default)")
    p.add_argument("--version", default="", help="model version (default: the active one)")
    p.add_argument("--top-k", type=_non_negative_int, default=5, help="classes to list")
    p.add_argument("--json", action="store_true", help="print one JSON list instead")
    p.set_defaults(command=_predict)


def _add_health(commands: Any, shared: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "health", parents=[shared], help="gateway and model health; exit 1 when NOT_SERVING"
    )
    p.add_argument(
        "--wait",
        type=_positive_float,
        default=0.0,
        metavar="SECONDS",
        help="keep asking until the gateway is SERVING, for at most SECONDS (e.g. right "
        "after starting edge-server)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(command=_health)


def _add_models(commands: Any, shared: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "models", parents=[shared], help="list models, their versions and states"
    )
    p.add_argument("--model", default="", help="only this model")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(command=_models)


def _add_push(commands: Any, shared: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "push",
        parents=[shared],
        help="upload a signed model bundle (resumes after a broken stream); exit 1 if rejected",
    )
    p.add_argument("bundle", help="bundle file (.edgebundle) made by `model-tools package`")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--stage", dest="mode", action="store_const", const="stage",
        help="verify and keep it without activating",
    )  # fmt: skip
    mode.add_argument(
        "--shadow", dest="mode", action="store_const", const="shadow",
        help="run it beside the active version on sampled traffic",
    )  # fmt: skip
    p.add_argument(
        "--allow-older",
        action="store_true",
        help="roll back on purpose: install even if its signed sequence is below the "
        "gateway's highest (needs the management token; docs/security.md)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(command=_push, mode="activate")


def _add_activate(commands: Any, shared: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "activate", parents=[shared], help="make a version on the gateway the active one"
    )
    p.add_argument("model", help="model name")
    p.add_argument("version", help="version to activate")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(command=_activate)


def _add_rollback(commands: Any, shared: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "rollback", parents=[shared], help="make the previously active version active again"
    )
    p.add_argument("model", help="model name")
    p.add_argument("--reason", default="", help="why, recorded by the gateway")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(command=_rollback)


def _predict(client: EdgeClient, args: argparse.Namespace) -> int:
    results = []
    for path in args.images:
        prediction = client.predict(path, model=args.model, version=args.version, top_k=args.top_k)
        if args.json:
            results.append({"path": path, **prediction.to_dict()})
        else:
            _print_lines(formatting.prediction_lines(path, prediction))
    if args.json:
        print(formatting.to_json(results))
    return 0


def _health(client: EdgeClient, args: argparse.Namespace) -> int:
    report = wait_until_serving(client, args.wait) if args.wait else client.health()
    if args.json:
        print(formatting.to_json(report.to_dict()))
    else:
        _print_lines(formatting.health_lines(report))
    return 0 if report.serving else 1


def _models(client: EdgeClient, args: argparse.Namespace) -> int:
    models = client.list_models(args.model)
    if args.json:
        print(formatting.to_json([m.to_dict() for m in models]))
    else:
        _print_lines(formatting.models_table(models))
    return 0


def _push(client: EdgeClient, args: argparse.Namespace) -> int:
    bar = None if args.quiet else formatting.ProgressBar()
    result = client.push(
        args.bundle,
        mode=args.mode,
        progress=bar.update if bar else None,
        allow_older=args.allow_older,
    )
    if bar is not None:
        bar.close()
    if args.json:
        print(formatting.to_json(result.to_dict()))
    else:
        print(formatting.push_line(result))
    return 0 if result.accepted else 1


def _activate(client: EdgeClient, args: argparse.Namespace) -> int:
    model = client.activate(args.model, args.version)
    print(
        formatting.to_json(model.to_dict())
        if args.json
        else "\n".join(formatting.model_lines(model))
    )
    return 0


def _rollback(client: EdgeClient, args: argparse.Namespace) -> int:
    model = client.rollback(args.model, args.reason)
    print(
        formatting.to_json(model.to_dict())
        if args.json
        else "\n".join(formatting.model_lines(model))
    )
    return 0


def _print_lines(lines: list[str]) -> None:
    print("\n".join(lines), flush=True)


def read_token_file(path: str) -> str:
    """The token in ``path``; ValueError naming --token-file when there is none to read."""
    where = f"--token-file {path}"
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: is a folder; give the file holding the token") from None
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise ValueError(f"{where}: cannot read it ({detail})") from None
    if not token:
        raise ValueError(f"{where}: is empty; write the gateway's management token into it")
    return token


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value
