"""``model-tools``: export, quantize, evaluate, bench, inspect, keygen, package, sign, verify.

A thin layer over the Python API: parse arguments, call one function, print the
result (a table, or JSON with ``--json``) on stdout. Errors print as
``model-tools: error: ...`` on stderr with exit status 1 (2 for usage errors),
without a traceback. Command modules are imported lazily so ``--help`` is quick
and only ``export`` loads torch.
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

from model_tools import __version__
from model_tools.errors import ToolError

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

    parser = argparse.ArgumentParser(
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    handler: Handler = args.handler
    from edge_server.errors import EdgeError

    try:
        return handler(args)
    except (ToolError, EdgeError) as exc:
        print(f"model-tools: error: {exc}", file=sys.stderr)
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"model-tools: error: {exc.strerror or exc}{where}", file=sys.stderr)
    except MemoryError:
        print("model-tools: error: out of memory; try a smaller --limit or batch", file=sys.stderr)
    except KeyboardInterrupt:
        print("model-tools: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen library failure: no traceback unless -v
        logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
        print(
            f"model-tools: error: unexpected {type(exc).__name__}: {exc} "
            "(rerun with -vv for details)",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
