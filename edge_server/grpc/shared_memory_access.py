"""Who may use the V2 system shared-memory extension (--shared-memory off|local|on).

A region names a file in the gateway's /dev/shm, so only callers on the gateway's own
machine can have put data there; with ``local`` (the default) a caller from another
machine is refused, as it could otherwise make the gateway read or overwrite objects
that belong to local apps. The check runs only when a call uses shared memory.
"""

from __future__ import annotations

import grpc

from edge_server.errors import AccessDenied, NotEnabled
from edge_server.grpc.v2_tensors import RegionAccess
from edge_server.v2.shared_memory import SharedMemoryRegistry

_LOCAL_PEERS = ("ipv4:127.", "ipv6:[::1]", "ipv6:[::ffff:127.", "unix:", "unix-abstract:")


def is_local_peer(peer: str) -> bool:
    """True for loopback and unix-socket peers as grpc reports them (``ipv4:127.0.0.1:5``)."""
    return peer.startswith(_LOCAL_PEERS)


class SharedMemoryAccess:
    def __init__(self, registry: SharedMemoryRegistry, mode: str) -> None:
        self._registry = registry
        self._mode = mode
        # ServerMetadata lists the extension only when callers can use it.
        self.extensions: tuple[str, ...] = () if mode == "off" else ("system_shared_memory",)

    def for_caller(self, context: grpc.aio.ServicerContext) -> RegionAccess:
        """The registry, checked lazily: a call without shared memory pays nothing."""

        def access() -> SharedMemoryRegistry:
            if self._mode == "off":
                raise NotEnabled(
                    "system shared memory is off on this gateway (--shared-memory off): "
                    "send the tensor bytes in the request"
                )
            if self._mode == "local" and not is_local_peer(context.peer()):
                raise AccessDenied(
                    f"shared-memory regions are for clients on the gateway's machine; this "
                    f"call came from {context.peer()}. Send the tensor bytes in the request "
                    "(or start the gateway with --shared-memory on)"
                )
            return self._registry

        return access
