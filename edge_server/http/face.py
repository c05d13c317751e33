"""The gateway's HTTP face: every route, built from the same domain objects as gRPC's.

``http_routes`` is the whole route table; the gateway (edge_server/app.py) hands it to
the endpoint (edge_server/http/server.py). ``/openapi.json`` documents the table it is
part of.

With several workers, every process serves this table. The management routes (V2 REST
load/unload) check the token in the process the caller reached; then a replica relays
the call to the primary (edge_server/http/primary_link.py), and the primary answers
only once every replica followed the change, as for gRPC management
(edge_server/workers/follow_barrier.py): the next request, on any connection, sees it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from edge_server.catalogue.serving import ServingCatalogue
from edge_server.gateway_info import GatewayInfo
from edge_server.http.auth import BearerCheck
from edge_server.http.openapi import openapi_document
from edge_server.http.ops_routes import ops_routes
from edge_server.http.predict_routes import PredictRoutes
from edge_server.http.primary_link import PrimaryLink
from edge_server.http.routes import Route
from edge_server.http.v2_routes import V2Routes
from edge_server.inference.predictor import Predictor
from edge_server.metrics import GatewayMetrics
from edge_server.v2.model_repository import ModelRepository
from edge_server.v2.tensor_inference import TensorInference


@dataclass(frozen=True)
class HttpFace:
    """What the HTTP routes serve with (the gRPC servicers' collaborators)."""

    predictor: Predictor
    models: ServingCatalogue
    repository: ModelRepository
    metrics: GatewayMetrics
    info: GatewayInfo
    render_metrics: Callable[[], Awaitable[bytes]]
    is_ready: Callable[[], bool]
    management_token: str
    repository_writes: bool
    # A replica: the management routes are answered by the primary, over this link.
    primary: PrimaryLink | None = None
    # A primary of several workers: a management answer waits for the replicas.
    replicas_followed: Callable[[], Awaitable[None]] | None = None


def http_routes(face: HttpFace) -> list[Route]:
    check = BearerCheck(
        face.management_token, lambda reason: face.metrics.auth_failures.labels(reason).inc()
    )
    routes = [
        *ops_routes(face.render_metrics, face.is_ready),
        *PredictRoutes(face.predictor, face.models, face.metrics, face.info).routes(),
        *V2Routes(
            TensorInference(face.predictor),
            face.repository,
            face.metrics,
            face.info,
            face.is_ready,
            face.repository_writes,
        ).routes(),
    ]
    # The rows marked management are the ones guarded: what /openapi.json says is enforced.
    routes = [_management(route, check, face) if route.management else route for route in routes]

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(openapi_document(routes, face.info.software_version))

    routes.append(
        Route(
            "GET",
            "/openapi.json",
            openapi,
            "this document",
            "operations",
            response={"application/json": {"type": "object"}},
        )
    )
    return routes


def _management(route: Route, check: BearerCheck, face: HttpFace) -> Route:
    """The token checked here, then the call served by the primary, answered once every
    worker followed it (a failure raises: it changed nothing, nothing to wait for)."""
    inner = route.handler if face.primary is None else face.primary.forward
    followed = face.replicas_followed

    async def handler(request: web.Request) -> web.StreamResponse:
        check(request)
        response = await inner(request)
        if followed is not None and response.status < 300:
            await followed()
        return response

    return dataclasses.replace(route, handler=handler)
