"""The primary's private folder: the unix sockets its workers talk to each other on.

A fresh folder made by ``tempfile.mkdtemp`` (mode 0700: only this user can reach what
is in it), created by the primary when it starts several workers and removed when it
stops. A replica is given its path and only opens or listens on sockets in it:

- ``management.sock``: the primary's gRPC management (ModelService, V2 load/unload),
  where a replica relays the management calls it receives (management_relay.py);
- ``http.sock``: the primary's private HTTP endpoint, serving the merged ``/metrics``
  page and V2 REST load/unload, where a replica relays those HTTP routes;
- ``worker-<index>.sock``: each replica's own ``/metrics`` page, which the primary reads
  to merge.

Unix sockets rather than loopback ports: nothing another local user can connect to,
no port to allocate, and a name the primary knows from the worker's index.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

SOCKET_NAME = "management.sock"
HTTP_SOCKET_NAME = "http.sock"


class PrivateFolder:
    """Where the sockets are; ``path`` None makes a fresh folder (the primary's)."""

    def __init__(self, path: Path | None = None) -> None:
        self.owned = path is None
        self.path = Path(tempfile.mkdtemp(prefix="edge-workers-")) if path is None else path

    @property
    def management_address(self) -> str:
        """The primary's gRPC management, as a gRPC target."""
        return f"unix:{self.path / SOCKET_NAME}"

    @property
    def http(self) -> Path:
        """The primary's private HTTP endpoint."""
        return self.path / HTTP_SOCKET_NAME

    def worker(self, index: int) -> Path:
        """Replica ``index``'s own /metrics endpoint."""
        return self.path / f"worker-{index}.sock"

    def remove(self) -> None:
        """The primary's folder goes with the primary (a replica's call does nothing)."""
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
