"""The HTTP route table's row: what one route serves, and what /openapi.json says of it.

The server (edge_server/http/server.py) registers exactly these rows, and the OpenAPI
document (edge_server/http/openapi.py) is written from the same rows, so the two cannot
disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp.typedefs import Handler

from edge_server.http.errors import Flavour

JsonObject = Mapping[str, Any]


@dataclass(frozen=True)
class Route:
    """One method on one path; ``path`` in aiohttp's form (``/v2/models/{model}``)."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    # OpenAPI: the request body's media types -> schema, and the 200 answer's.
    request: Mapping[str, JsonObject] = field(default_factory=dict)
    response: Mapping[str, JsonObject] = field(default_factory=dict)
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    management: bool = False  # needs the management token when one is set


def flavour_of(path: str) -> Flavour:
    """The Open Inference Protocol's routes answer errors in its own shape."""
    return "v2" if path == "/v2" or path.startswith("/v2/") else "edge"
