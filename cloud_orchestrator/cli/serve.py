"""``edge-orchestrator serve``: the OrchestratorService (pull mode, feedback) and the
rollout runner, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_orchestrator.cli.inputs import read_token_file
from cloud_orchestrator.errors import InvalidRequest

__all__ = ["GATEWAY_TOKEN_ENV", "SERVE_COMMANDS", "add_serve_command"]

GATEWAY_TOKEN_ENV = "EDGE_ORCHESTRATOR_GATEWAY_TOKEN"


def add_serve_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("serve", "run the OrchestratorService (pull mode, feedback) and rollouts")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50070, help="gRPC port (0 = any free)")
    p.add_argument(
        "--gateway-token-file",
        type=Path,
        default=None,
        help="file with a fleet-wide enrollment token that admits at once (what gateways "
        "configured with --orchestrator-token send); prefer `enrollment-tokens create`",
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
    p.add_argument(
        "--heartbeat-seconds",
        type=float,
        default=10.0,
        help="a heartbeat on each idle Subscribe stream this often; a gateway reconnects "
        "after three missed ones, and its last-seen moves with them",
    )
    p.add_argument(
        "--desired-poll-seconds",
        type=float,
        default=0.25,
        help="how often the fleet generation row is compared (one query whatever the fleet "
        "size): how soon a change made by another process reaches the streams on SQLite, "
        "and the net under a lost NOTIFY on PostgreSQL",
    )
    p.add_argument(
        "--reconcile-seconds",
        type=float,
        default=600.0,
        help="full reread of the desired state even when the generation did not move (a "
        "guard, not the path of a change), with +-25%% jitter",
    )
    p.add_argument(
        "--fetch-stall-seconds",
        type=float,
        default=30.0,
        help="a FetchModel block its gateway does not read within this ends the call "
        "(UNAVAILABLE; the gateway resumes from its offset), so stalled readers cannot hold "
        "the shared fetch budget",
    )
    p.add_argument(
        "--presence-flush-seconds",
        type=float,
        default=5.0,
        help="gateways' last-seen times are written in one transaction this often",
    )
    p.add_argument("--no-rollouts", action="store_true", help="serve gateways only")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus GET /metrics on this port of --host (0 = any free; no "
        "authentication: keep it reachable by Prometheus only); off by default",
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="serve the web console and its JSON API on this port (0 = any free; "
        "default: off); HTTPS with --tls-cert/--tls-key",
    )
    p.add_argument("--http-host", default=None, help="console address (default: --host)")
    p.add_argument(
        "--console-no-auth",
        action="store_true",
        help="console without operator tokens: only on a loopback --http-host",
    )
    limits = _limit_defaults()
    p.add_argument(
        "--rate-per-second",
        type=float,
        default=limits.rate_per_second,
        help="calls per second each pull gateway may make per method, on average",
    )
    p.add_argument(
        "--rate-burst", type=int, default=limits.rate_burst, help="calls at once beyond the rate"
    )
    p.add_argument(
        "--enroll-rate-per-second",
        type=float,
        default=limits.enroll_rate_per_second,
        help="enrollments per second per enrollment token, on average",
    )
    p.add_argument(
        "--enroll-burst",
        type=int,
        default=limits.enroll_burst,
        help="enrollments at once per token beyond that rate",
    )
    p.add_argument(
        "--result-bytes-per-day",
        type=int,
        default=limits.result_bytes_per_day,
        help="result bytes each gateway may store per UTC day",
    )
    p.add_argument(
        "--events-per-day",
        type=int,
        default=limits.events_per_day,
        help="status events each gateway may store per UTC day",
    )


def _limit_defaults() -> Any:
    """Defaults of the gateway limits, without importing the app (SQLAlchemy) for --help."""
    from types import SimpleNamespace

    return SimpleNamespace(
        rate_per_second=2.0,
        rate_burst=30,
        enroll_rate_per_second=5.0,
        enroll_burst=50,
        result_bytes_per_day=64 * 1024 * 1024,
        events_per_day=10_000,
    )


def _check_intervals(args: argparse.Namespace) -> None:
    ranges = (
        ("--heartbeat-seconds", args.heartbeat_seconds, 1.0, 3600.0),
        ("--desired-poll-seconds", args.desired_poll_seconds, 0.05, 60.0),
        ("--reconcile-seconds", args.reconcile_seconds, 10.0, 86_400.0),
        ("--presence-flush-seconds", args.presence_flush_seconds, 0.5, 300.0),
        ("--fetch-stall-seconds", args.fetch_stall_seconds, 1.0, 3600.0),
    )
    for flag, value, low, high in ranges:
        if not low <= value <= high:
            raise InvalidRequest(f"{flag} must be between {low:g} and {high:g}, not {value:g}")


def _check_limits(args: argparse.Namespace) -> None:
    if min(args.rate_per_second, args.enroll_rate_per_second) <= 0:
        raise InvalidRequest("--rate-per-second and --enroll-rate-per-second must be > 0")
    if min(args.rate_burst, args.enroll_burst) < 1:
        raise InvalidRequest("--rate-burst and --enroll-burst must be >= 1")
    if args.result_bytes_per_day < 1 or args.events_per_day < 1:
        raise InvalidRequest("--result-bytes-per-day and --events-per-day must be >= 1")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise InvalidRequest(f"--metrics-port {args.metrics_port} is not a port (0-65535)")


def _gateway_token(args: argparse.Namespace) -> str:
    if args.gateway_token_file is not None:
        return read_token_file("--gateway-token-file", args.gateway_token_file)
    return os.environ.get(GATEWAY_TOKEN_ENV, "")


def _check_tls(args: argparse.Namespace) -> None:
    """Now, with the option to fix: gRPC would only fail to bind, with no reason."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidRequest(
            "--tls-cert and --tls-key go together: give both for TLS, neither for plaintext"
        )
    if args.tls_cert is not None:
        from edge_contracts.cli.tls_files import check_tls_pair

        check_tls_pair(args.tls_cert, args.tls_key)


def _console(args: argparse.Namespace) -> Any:
    """The console's options, or None without --http-port."""
    if args.http_port is None:
        if args.console_no_auth or args.http_host:
            raise InvalidRequest("--http-host and --console-no-auth need --http-port")
        return None
    if not 0 <= args.http_port <= 65535:
        raise InvalidRequest("--http-port must be 0..65535")
    from cloud_orchestrator.console.keys import ConsoleOptions
    from cloud_orchestrator.console.server import is_loopback

    host = args.http_host or args.host
    if args.console_no_auth and not is_loopback(host):
        raise InvalidRequest(
            f"--console-no-auth serves the console to anyone who can reach it: only on a "
            f"loopback --http-host (127.0.0.1), not {host!r}; create operators instead "
            "(`edge-orchestrator operators add NAME`)"
        )
    return ConsoleOptions(
        host=host,
        port=args.http_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        no_auth=args.console_no_auth,
    )


def cmd_serve(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.app import ServeOptions, serve, tune_garbage_collector

    _check_tls(args)
    _check_limits(args)
    _check_intervals(args)
    options = ServeOptions(
        host=args.host,
        port=args.port,
        gateway_token=_gateway_token(args),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        instance_id=args.instance_id,
        lease_seconds=args.lease_seconds,
        poll_seconds=args.poll_seconds,
        heartbeat_seconds=args.heartbeat_seconds,
        desired_poll_seconds=args.desired_poll_seconds,
        reconcile_seconds=args.reconcile_seconds,
        presence_flush_seconds=args.presence_flush_seconds,
        fetch_stall_seconds=args.fetch_stall_seconds,
        run_rollouts=not args.no_rollouts,
        rate_per_second=args.rate_per_second,
        rate_burst=args.rate_burst,
        enroll_rate_per_second=args.enroll_rate_per_second,
        enroll_burst=args.enroll_burst,
        result_bytes_per_day=args.result_bytes_per_day,
        events_per_day=args.events_per_day,
        metrics_port=args.metrics_port,
        console=_console(args),
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(orch, options, stop)

    tune_garbage_collector()
    asyncio.run(run())
    return 0


SERVE_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {"serve": cmd_serve}
