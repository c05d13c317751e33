"""Why a port could not be listened on, in words an operator can act on.

gRPC reports only "Failed to bind to address"; binding a plain socket the same way
recovers the reason (errno) so the message can say what to change.
"""

from __future__ import annotations

import errno
import socket

from edge_contracts.errors import StartupError


def probe_bind(host: str, port: int) -> int | None:
    """The errno binding ``host:port`` fails with now, or None when it would succeed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return errno.EADDRNOTAVAIL
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As gRPC and asyncio do: connections in TIME_WAIT do not make a port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.errno
    return None


def listen_error(host: str, port: int, flag: str, host_flag: str, code: int | None) -> StartupError:
    """One line naming the address and the flag to change."""
    where = f"cannot listen on {host}:{port}"
    if code == errno.EADDRINUSE:
        return StartupError(
            f"{where}: the port is in use by another program; stop it or choose another "
            f"port with {flag}"
        )
    if code == errno.EADDRNOTAVAIL:
        return StartupError(
            f"{where}: {host} is not an address of this machine; change {host_flag}"
        )
    if code == errno.EACCES:
        return StartupError(
            f"{where}: permission denied (ports below 1024 need privileges); choose a port "
            f"from 1024 up with {flag}"
        )
    detail = f"{errno.errorcode.get(code, code)}" if code is not None else "gRPC refused it"
    return StartupError(f"{where} ({detail}); check {flag} and {host_flag}")
