"""The Open Inference Protocol (KServe V2) over REST, as Triton, KServe and MLServer serve it.

The same domain objects as the gRPC V2 servicer: TensorInference for infer (admission,
batching, statistics, image preprocessing of BYTES inputs through the manifest), the
ModelRepository for readiness, metadata, index, load and unload. Request metrics use
the method label ``http_infer``. Load and unload are marked ``management``: the face
(edge_server/http/face.py) puts the management token check in front of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from edge_server.errors import InvalidInput, NotEnabled
from edge_server.gateway_info import GatewayInfo
from edge_server.http.bodies import read_body, read_json
from edge_server.http.routes import Route
from edge_server.http.v2_json import BINARY_TYPE, HEADER_LENGTH, decode_infer, encode_infer
from edge_server.http.v2_json import split_body as split_infer_body
from edge_server.inference.request_metrics import observed
from edge_server.metrics import GatewayMetrics
from edge_server.v2 import repository_parameters
from edge_server.v2.datatypes import v2_datatype
from edge_server.v2.model_repository import ModelRepository
from edge_server.v2.server_facts import PLATFORM, SERVER_NAME
from edge_server.v2.tensor_inference import TensorInference

METHOD = "http_infer"
# Over REST: the repository and binary tensors; configuration, statistics and shared
# memory are served on gRPC only (docs/http.md).
EXTENSIONS = ("model_repository", "binary_tensor_data")
_JSON = "application/json"


def _schema(name: str) -> dict[str, Any]:
    return {_JSON: {"$ref": f"#/components/schemas/{name}"}}


class V2Routes:
    def __init__(
        self,
        inference: TensorInference,
        repository: ModelRepository,
        metrics: GatewayMetrics,
        info: GatewayInfo,
        server_ready: Callable[[], bool],
        repository_writes: bool,
    ) -> None:
        self._inference = inference
        self._repository = repository
        self._metrics = metrics
        self._info = info
        self._server_ready = server_ready
        self._repository_writes = repository_writes

    async def server_metadata(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"name": SERVER_NAME, "version": self._info.software_version, "extensions": EXTENSIONS}
        )

    async def live(self, _request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(self, _request: web.Request) -> web.Response:
        ready = self._server_ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        model = self._repository.serving(name, version)

        def tensors(specs: Any) -> list[dict[str, Any]]:
            return [
                {"name": s.name, "datatype": v2_datatype(s.dtype), "shape": list(s.shape)}
                for s in specs
            ]

        return web.json_response(
            {
                "name": model.name,
                "versions": self._repository.versions(model.name),
                "platform": PLATFORM,
                "inputs": tensors(model.inputs),
                "outputs": tensors(model.outputs),
            }
        )

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        ready = self._repository.model_ready(name, version)
        return web.json_response({"name": name, "ready": ready}, status=200 if ready else 503)

    async def infer(self, request: web.Request) -> web.Response:
        name, version = _model(request)
        body = await read_body(request)
        header, binary = split_infer_body(body, request.headers.get(HEADER_LENGTH))
        tensors, binary_outputs = decode_infer(header, binary, name, version)
        label = self._metrics.model_label(name, self._repository.served_names())
        timeout = None if tensors.deadline is None else _remaining(tensors.deadline)
        result = await observed(
            self._metrics, METHOD, label, timeout, lambda: self._inference.infer(tensors)
        )
        request_id = header.get("id")
        answer, header_length = encode_infer(
            result, request_id if isinstance(request_id, str) else "", binary_outputs
        )
        if header_length is None:
            return web.Response(body=answer, content_type=_JSON)
        return web.Response(
            body=answer,
            content_type=BINARY_TYPE,
            headers={HEADER_LENGTH: str(header_length)},
        )

    async def index(self, request: web.Request) -> web.Response:
        options = await _optional_json(request)
        ready_only = options.get("ready", False) is True
        return web.json_response(
            [
                {"name": e.name, "version": e.version, "state": e.state, "reason": e.reason}
                for e in self._repository.index(ready_only=ready_only)
            ]
        )

    async def load(self, request: web.Request) -> web.Response:
        self._writes(request)
        parameters = (await _optional_json(request)).get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput("'parameters' must be a JSON object", "parameters")
        version = repository_parameters.load_version(parameters)
        await self._repository.load(request.match_info["model"], version)
        return web.json_response({})

    async def unload(self, request: web.Request) -> web.Response:
        self._writes(request)
        parameters = (await _optional_json(request)).get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidInput("'parameters' must be a JSON object", "parameters")
        repository_parameters.check_unload(parameters)
        self._repository.unload(request.match_info["model"])
        return web.json_response({})

    def _writes(self, request: web.Request) -> None:
        if not self._repository_writes:
            raise NotEnabled(
                f"{request.path} is served on the gateway's management port "
                "(--management-port), not here"
            )

    def routes(self) -> list[Route]:
        model_paths = ("/v2/models/{model}", "/v2/models/{model}/versions/{version}")
        routes = [
            Route(
                "GET",
                "/v2",
                self.server_metadata,
                "server metadata",
                "v2",
                response=_schema("ServerMetadata"),
            ),
            Route("GET", "/v2/health/live", self.live, "server liveness", "v2"),
            Route(
                "GET",
                "/v2/health/ready",
                self.ready,
                "server readiness (503 until a model serves)",
                "v2",
            ),
        ]
        for path in model_paths:
            routes += [
                Route(
                    "GET",
                    path,
                    self.model_metadata,
                    "model metadata",
                    "v2",
                    response=_schema("ModelMetadata"),
                ),
                Route(
                    "GET",
                    f"{path}/ready",
                    self.model_ready,
                    "model readiness (503 while not serving)",
                    "v2",
                ),
                Route(
                    "POST",
                    f"{path}/infer",
                    self.infer,
                    "inference on tensors",
                    "v2",
                    request={
                        **_schema("InferRequest"),
                        BINARY_TYPE: {"type": "string", "format": "binary"},
                    },
                    response=_schema("InferResponse"),
                ),
            ]
        repository = "/v2/repository/models/{model}"
        routes += [
            Route(
                "POST",
                "/v2/repository/index",
                self.index,
                "the models on disk and their state",
                "v2",
                request={_JSON: {"type": "object"}},
            ),
            Route(
                "POST",
                f"{repository}/load",
                self.load,
                "serve a version on disk (parameters.version picks one)",
                "v2",
                request={_JSON: {"type": "object"}},
                management=True,
            ),
            Route(
                "POST",
                f"{repository}/unload",
                self.unload,
                "stop serving a model",
                "v2",
                request={_JSON: {"type": "object"}},
                management=True,
            ),
        ]
        return routes


def _model(request: web.Request) -> tuple[str, str]:
    return request.match_info["model"], request.match_info.get("version", "")


def _remaining(deadline: float) -> float:
    return deadline - time.monotonic()


async def _optional_json(request: web.Request) -> dict[str, Any]:
    """An optional JSON object body (empty body: no options)."""
    if not request.can_read_body:
        return {}
    document = await read_json(request, "the request body")
    if not isinstance(document, dict):
        raise InvalidInput("the request body must be a JSON object", "body")
    return document
