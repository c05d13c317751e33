"""``edge-orchestrator``: the model registry, fleet rollouts, pull-mode service and
feedback, as a thin wrapper over ``cloud_orchestrator.app.Orchestrator``.

Results go to stdout (``--json`` where scripts read them). A mistake is one line on
stderr, ``edge-orchestrator: error: ...``, with exit status 2 when the command could
not start (arguments, the cloud extra, the database) and 1 when it ran and failed
(``cli.errors``). The subcommands live in ``cli.registry`` (publish, models,
versions), ``cli.fleet`` (gateways, assign), ``cli.identity`` (enrollment-tokens;
gateways identities, admit, reject, revoke), ``cli.rollouts`` (deploy, rollouts,
rollout), ``cli.serve`` (serve), ``cli.feedback`` (feedback, export-hard-examples) and
``cli.operators`` (operators of the web console).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud_orchestrator import __version__
from cloud_orchestrator.cli.drift import DRIFT_COMMANDS, add_drift_commands
from cloud_orchestrator.cli.errors import CLOUD_EXTRA, missing_cloud_module, one_line, report
from cloud_orchestrator.cli.feedback import FEEDBACK_COMMANDS, add_feedback_commands
from cloud_orchestrator.cli.fleet import FLEET_COMMANDS, add_fleet_commands
from cloud_orchestrator.cli.identity import IDENTITY_COMMANDS, add_identity_commands
from cloud_orchestrator.cli.operators import OPERATOR_COMMANDS, add_operator_commands
from cloud_orchestrator.cli.registry import REGISTRY_COMMANDS, add_registry_commands
from cloud_orchestrator.cli.rollouts import ROLLOUT_COMMANDS, add_rollout_commands
from cloud_orchestrator.cli.serve import SERVE_COMMANDS, add_serve_command
from cloud_orchestrator.errors import InvalidRequest, OrchestratorError
from cloud_orchestrator.storage.url import (
    DB_ENV,
    DEFAULT_DB_URL,
    check_url,
    redact_url,
    url_from_env,
)
from edge_contracts.cli.parser import OneLineParser

if TYPE_CHECKING:  # imports SQLAlchemy: only once the cloud extra is known to be there
    from cloud_orchestrator.app import Orchestrator

ARTIFACTS_ENV = "EDGE_ORCHESTRATOR_ARTIFACTS"
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
        metavar="DIR|postgresql",
        help="where bundles are kept: a content-addressed folder, or `postgresql` for the "
        "PostgreSQL database itself (shared by orchestrator replicas; ./postgresql is a "
        f"folder) [env {ARTIFACTS_ENV}; default {DEFAULT_ARTIFACTS}]",
    )
    parser.add_argument(
        "--log-level", default=default, help="DEBUG, INFO, WARNING (default) or ERROR"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edge-orchestrator",
        description="Model registry, fleet rollouts, pull-mode service and feedback store "
        "for edge gateways (docs/orchestrator.md).",
    )
    parser.add_argument("--version", action="version", version=f"edge-orchestrator {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = OneLineParser(add_help=False)
    _common(common, top=False)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    add_registry_commands(command)
    add_fleet_commands(command, common)
    add_identity_commands(command, common)
    add_rollout_commands(command)
    add_serve_command(command)
    add_feedback_commands(command)
    add_drift_commands(command)
    add_operator_commands(command, common)
    return parser


COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    **REGISTRY_COMMANDS,
    **FLEET_COMMANDS,
    **IDENTITY_COMMANDS,
    **ROLLOUT_COMMANDS,
    **SERVE_COMMANDS,
    **FEEDBACK_COMMANDS,
    **DRIFT_COMMANDS,
    **OPERATOR_COMMANDS,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = (args.log_level or ("INFO" if args.command == "serve" else "WARNING")).upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    db_url = url_from_env(args.db)
    missing = missing_cloud_module(db_url)
    if missing:  # checked before anything is opened or written
        report(f"this command needs the cloud extra (missing module {missing!r}): {CLOUD_EXTRA}")
        return 2
    orch = _open(db_url, _artifacts(args.artifacts))
    if orch is None:
        return 2
    try:
        return _run(orch, args)
    finally:
        orch.close()


def _artifacts(given: str | None) -> Path | str:
    """A folder, or DATABASE_ARTIFACTS (cloud_orchestrator/registry/stores.py)."""
    from cloud_orchestrator.registry.stores import DATABASE_ARTIFACTS

    value = given or os.environ.get(ARTIFACTS_ENV, "") or DEFAULT_ARTIFACTS
    return DATABASE_ARTIFACTS if value == DATABASE_ARTIFACTS else Path(value)


def _open(db_url: str, artifacts: Path | str) -> Orchestrator | None:
    """The Orchestrator on this database, or None once the reason is reported."""
    try:
        check_url(db_url)
        from cloud_orchestrator.app import Orchestrator

        return Orchestrator(db_url, artifacts)
    except InvalidRequest as exc:
        report(str(exc))
    except Exception as exc:  # an unreachable server, a file that cannot be created, ...
        report(f"cannot open database {redact_url(db_url)}: {one_line(exc)}")
    return None


def _run(orch: Orchestrator, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return COMMANDS[args.command](orch, args)
    except OrchestratorError as exc:
        report(str(exc))
    except SQLAlchemyError as exc:
        report(f"database {orch.db.describe()}: {one_line(exc)}")
    except (OSError, ValueError) as exc:
        report(one_line(exc))
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
