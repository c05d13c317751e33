"""Keep the gRPC core's own log lines off the command line's stderr.

The gRPC core writes diagnostics (a failed TLS handshake, an unusable root
certificate) straight to file descriptor 2, beside the CLI's one-line error that
already carries the reason in the call's status. For the duration of a command,
fd 2 points at /dev/null while Python's ``sys.stderr`` keeps writing to the
terminal. A user who sets GRPC_VERBOSITY (to debug) keeps the core's lines.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def core_logs_silenced(environ: Mapping[str, str]) -> Iterator[None]:
    if "GRPC_VERBOSITY" in environ or not _stderr_is_fd_2():
        yield  # debugging, or stderr already captured elsewhere (tests): leave it be
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    original = sys.stderr
    with open(terminal, "w", encoding=original.encoding, errors="backslashreplace") as visible:
        sys.stderr = visible
        try:
            yield
        finally:
            visible.flush()
            os.dup2(terminal, 2)  # before ``visible`` closes ``terminal``
            sys.stderr = original


def _stderr_is_fd_2() -> bool:
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
