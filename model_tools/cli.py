"""``model-tools``: export, quantize, evaluate, bench, inspect, keygen, package, sign, verify.

A thin layer over the Python API: parse arguments, call one function, print the
result (a table, or JSON with ``--json``) on stdout. Every error is one line on
stderr, ``model-tools[ <command>]: error: ...``, without a traceback: exit status 1
when the command failed, 2 when it could not start (a usage mistake, or a package of
the ``tools`` extra missing). Command modules are imported lazily so ``--help`` is
quick and works without the extra, and only ``export`` loads torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from edge_contracts.cli.parser import OneLineParser
from model_tools import __version__
from model_tools.errors import ToolError, missing_extra

__all__ = ["emit", "main"]

Handler = Callable[[argparse.Namespace], int]


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def build_parser() -> argparse.ArgumentParser:
    from model_tools.bundle_cli import add_bundle_commands
    from model_tools.cli_model import add_model_commands

    parser = OneLineParser(
        prog="model-tools",
        description="Cloud-side model optimization: export PyTorch to ONNX, quantize, "
        "evaluate, benchmark, inspect, and package signed model bundles.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    add_model_commands(commands)
    add_bundle_commands(commands)
    for subparser in commands.choices.values():
        subparser.add_argument(
            "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
        )
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="model-tools: %(levelname)s: %(message)s")
    # torch's exporter and onnxruntime's tools are chatty about things users cannot change.
    for noisy in ("torch", "onnxscript", "onnx_ir", "onnxruntime"):
        logging.getLogger(noisy).setLevel(max(level, logging.ERROR))
    if verbosity == 0:
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")


def _fail(message: str, code: int = 1) -> int:
    """Print ``message`` as one error line (library messages can span several)."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"model-tools: error: {text}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from edge_contracts.errors import EdgeError

    handler: Handler = args.handler
    try:
        return handler(args)
    except (ToolError, EdgeError) as exc:
        return _fail(str(exc))
    except ModuleNotFoundError as exc:
        missing = missing_extra(args.command, exc)
        if missing is None:
            raise
        return _fail(missing, 2)
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except MemoryError:
        return _fail("out of memory; try a smaller --limit or batch")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("model-tools: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen library failure: no traceback unless -v
        logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with -vv for details)")


if __name__ == "__main__":
    sys.exit(main())
