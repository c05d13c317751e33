"""``edge-server``: parse flags, build Settings, run the gateway until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import fields
from pathlib import Path

from edge_contracts.cli.parser import OneLineParser
from edge_server import __version__
from edge_server.settings import ENV_PREFIX, FIELD_HELP, SECTIONS, Settings, load_settings

logger = logging.getLogger("edge_server")


def _add_setting(group: argparse._ArgumentGroup, name: str, default: object) -> None:
    """One flag per setting: --max-queue-size for max_queue_size, help text from its field."""
    flag = "--" + name.replace("_", "-")
    env = f"env {ENV_PREFIX}{name.upper()}"
    if name == "allow_unsigned":
        group.add_argument(
            flag,
            dest=name,
            action="store_const",
            const=True,
            default=None,
            help=f"{FIELD_HELP[name]} [{env}]",
        )
        return
    if isinstance(default, tuple):
        default = ",".join(str(item) for item in default)
    elif isinstance(default, dict):
        default = ",".join(f"{k}={v}" for k, v in default.items()) or "none"
    group.add_argument(
        flag,
        dest=name,
        default=None,
        metavar=name.upper(),
        help=f"{FIELD_HELP[name]} [{env}; default: {default}]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edge-server",
        description="Serve ONNX models over gRPC (edge.v1, grpc.health.v1, reflection) with "
        "Prometheus metrics over HTTP. Precedence: flags > EDGE_* environment variables > "
        "--config file > defaults.",
    )
    parser.add_argument("--version", action="version", version=f"edge-server {__version__}")
    parser.add_argument(
        "--config", type=Path, default=None, help="JSON file with any of the settings below"
    )
    defaults = Settings().values()
    for section, kind in SECTIONS.items():
        group = parser.add_argument_group(f"{section} settings", (kind.__doc__ or "").strip())
        for f in fields(kind):
            _add_setting(group, f.name, defaults[f.name])
    return parser


async def serve(settings: Settings) -> int:
    from edge_server.app import Gateway, lower_background_priority  # fast `--help`
    from edge_server.workers.layout import resolve_workers

    settings = resolve_workers(settings)  # --workers 0: from the cores and the memory
    lower_background_priority(settings)
    gateway = Gateway(settings)
    await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config")
    try:
        settings = load_settings(args, config_file=config_file)
        from edge_server.preflight import check_settings_files  # after parsing: fast --help

        check_settings_files(settings)
    except ValueError as exc:  # a configuration mistake: the message names the flag
        return _fail(str(exc), 2)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from edge_server.errors import EdgeError

    try:
        return asyncio.run(serve(settings))
    except EdgeError as exc:  # StartupError (a port taken) and anything else refused on purpose
        return _fail(str(exc), 1)
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), 1)


def _fail(message: str, code: int) -> int:
    print(f"edge-server: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
