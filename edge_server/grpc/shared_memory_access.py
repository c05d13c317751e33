"""Who may use the V2 system shared-memory extension (--shared-memory off|local|on).

A region names a file in the gateway's /dev/shm, so only callers on the gateway's own
machine can have put data there; with ``local`` (the default) a caller from another
machine is refused, as it could otherwise make the gateway read or overwrite objects
that belong to local apps.

Being local is not enough: any process on the board (or a remote caller relayed by
the HAProxy front, which connects from loopback) looks local. Every shared-memory call
therefore carries a credential, ``authorization: Bearer <token>``: the management token
or an app token (--shared-memory-app-tokens, edge_server/v2/shared_memory_apps.py),
each bound to the uid whose objects it may register. The checks run only when a call
uses shared memory.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from pathlib import Path

import grpc

from edge_server.errors import AccessDenied, NotEnabled, Unauthenticated
from edge_server.grpc.v2_tensors import RegionAccess
from edge_server.settings import Settings
from edge_server.v2.shared_memory import CallerRegions, SharedMemoryRegistry
from edge_server.v2.shared_memory_apps import (
    FLAG,
    Owner,
    fingerprint,
    load_app_tokens,
    management_owner,
)

_LOCAL_PEERS = ("ipv4:127.", "ipv6:[::1]", "ipv6:[::ffff:127.", "unix:", "unix-abstract:")
_BEARER = "Bearer "


def is_local_peer(peer: str) -> bool:
    """True for loopback and unix-socket peers as grpc reports them (``ipv4:127.0.0.1:5``)."""
    return peer.startswith(_LOCAL_PEERS)


class SharedMemoryAccess:
    def __init__(
        self,
        registry: SharedMemoryRegistry,
        mode: str,
        management_token: str = "",
        app_tokens: Mapping[str, Owner] | None = None,
    ) -> None:
        self._registry = registry
        self._mode = mode
        self._management = management_owner(management_token) if management_token else None
        self._apps = dict(app_tokens or {})
        # ServerMetadata lists the extension only when callers can use it.
        self.extensions: tuple[str, ...] = () if mode == "off" else ("system_shared_memory",)

    @classmethod
    def from_settings(
        cls, registry: SharedMemoryRegistry, settings: Settings
    ) -> SharedMemoryAccess:
        """Reads the app tokens file (a mistake in it is a StartupError)."""
        s = settings.server
        path: Path | None = s.shared_memory_app_tokens
        apps = load_app_tokens(path) if path is not None and s.shared_memory != "off" else {}
        return cls(registry, s.shared_memory, settings.effective_management_token, apps)

    def for_caller(self, context: grpc.aio.ServicerContext) -> RegionAccess:
        """The caller's view of the registry, checked lazily: a call without shared
        memory pays nothing, one with several regions checks once."""
        checked: list[CallerRegions] = []

        def access() -> CallerRegions:
            if not checked:
                checked.append(CallerRegions(self._registry, self._owner(context)))
            return checked[0]

        return access

    def _owner(self, context: grpc.aio.ServicerContext) -> Owner:
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
        if self._management is None and not self._apps:
            raise AccessDenied(
                "shared memory needs a credential and this gateway has none configured: "
                f"start it with {FLAG} FILE (one line per app: '<app> <uid> <token>', see "
                "docs/kserve-v2.md) or --management-token-file, and send "
                "'authorization: Bearer <token>' with shared-memory calls"
            )
        presented = _metadata(context).get("authorization")
        if presented is None or not presented.startswith(_BEARER):
            raise Unauthenticated(
                "shared-memory calls need a credential: send gRPC metadata "
                "'authorization: Bearer <token>' with your app token "
                f"({FLAG}) or the management token"
            )
        token = presented[len(_BEARER) :]
        management = self._management
        if management is not None and hmac.compare_digest(
            fingerprint(token), management.credential
        ):
            return management
        # A dict lookup by SHA-256 digest: a guess learns nothing about a stored token.
        owner = self._apps.get(fingerprint(token))
        if owner is None:
            raise AccessDenied("the bearer token is not a shared-memory credential of this gateway")
        return owner


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }
