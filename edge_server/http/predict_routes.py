"""Simple prediction over HTTP: an image in, edge.v1 PredictResponse out as JSON.

``POST /predict`` uses the default model (as gRPC Predict with no model name does);
``POST /v1/models/{model}[/versions/{version}]/predict`` names one. The image comes as
multipart ``image`` field or as an ``image/*`` body (edge_server/http/bodies.py). The
request becomes the same PredictRequest message gRPC receives and goes through the same
conversion, predictor and metrics (method label ``http_predict``); the answer is the
same PredictResponse, as JSON under its proto field names (built directly by
predict_json.py, equal to the message's JSON mapping).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from edge_contracts.proto.edge.v1 import inference_pb2
from edge_server.catalogue.serving import ServingCatalogue
from edge_server.errors import InvalidInput
from edge_server.gateway_info import GatewayInfo
from edge_server.http.bodies import read_image
from edge_server.http.message_json import message_json
from edge_server.http.predict_json import predict_json
from edge_server.http.routes import Route
from edge_server.inference.predictor import Predictor
from edge_server.inference.request_metrics import observed
from edge_server.metrics import GatewayMetrics
from edge_server.wire import edge_v1

METHOD = "http_predict"
REQUEST_ID_HEADER = "X-Request-Id"
_IMAGE_BODY: dict[str, dict[str, Any]] = {
    "multipart/form-data": {
        "type": "object",
        "required": ["image"],
        "properties": {"image": {"type": "string", "format": "binary"}},
    },
    "image/*": {"type": "string", "format": "binary"},
}
_QUERY = (
    ("top_k", "integer", "also return the k best classes (at most 1000)"),
    ("raw_output", "boolean", "also return the model's raw output tensor"),
    ("timeout_ms", "integer", "give up (504) when the answer is not ready by then"),
)


def _int(query: Mapping[str, str], name: str) -> int:
    text = query.get(name, "")
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput(f"query parameter {name}={text!r} is not an integer", name) from None
    if value < 0:
        raise InvalidInput(f"query parameter {name}={value} must not be negative", name)
    return value


def _flag(query: Mapping[str, str], name: str) -> bool:
    text = query.get(name, "false").lower()
    if text not in ("true", "false", "1", "0"):
        raise InvalidInput(f"query parameter {name}={text!r} must be true or false", name)
    return text in ("true", "1")


def predict_request(
    model: str, version: str, image: bytes, query: Mapping[str, str], request_id: str
) -> tuple[inference_pb2.PredictRequest, float | None]:
    """The gRPC request this HTTP call stands for, and its time budget in seconds."""
    timeout_ms = _int(query, "timeout_ms")
    request = inference_pb2.PredictRequest(
        model_name=model,
        model_version=version,
        image=image,
        top_k=min(_int(query, "top_k"), 2**32 - 1),
        return_raw_output=_flag(query, "raw_output"),
        request_id=request_id,
    )
    return request, timeout_ms / 1000 if timeout_ms else None


class PredictRoutes:
    def __init__(
        self,
        predictor: Predictor,
        models: ServingCatalogue,
        metrics: GatewayMetrics,
        info: GatewayInfo,
    ) -> None:
        self._predictor = predictor
        self._models = models
        self._metrics = metrics
        self._info = info

    async def predict(self, request: web.Request) -> web.Response:
        model = request.match_info.get("model", "")
        version = request.match_info.get("version", "")
        image = await read_image(request)
        message, time_remaining = predict_request(
            model, version, image, request.query, request.headers.get(REQUEST_ID_HEADER, "")
        )
        label = self._metrics.model_label(model or self._models.default_model, self._models)
        result = await observed(
            self._metrics,
            METHOD,
            label,
            time_remaining,
            lambda: self._predictor.predict(edge_v1.to_predict_input(message, time_remaining)),
        )
        body = predict_json(result, message.request_id)
        if body is None:
            body = message_json(edge_v1.to_predict_response(result, message.request_id))
        return web.json_response(body)

    async def health(self, _request: web.Request) -> web.Response:
        health = edge_v1.to_health_response(self._models, self._info)
        body = message_json(health)
        default = self._models.slot(self._models.default_model)
        active = default.active if default is not None else None
        body["default_model_version"] = active.version if active is not None else ""
        serving = health.status == inference_pb2.SERVING_STATUS_SERVING
        return web.json_response(body, status=200 if serving else 503)

    def routes(self) -> list[Route]:
        def predict(path: str, summary: str) -> Route:
            return Route(
                "POST",
                path,
                self.predict,
                summary,
                "prediction",
                request=_IMAGE_BODY,
                response={"application/json": {"$ref": "#/components/schemas/PredictResponse"}},
                query=_QUERY,
            )

        return [
            predict("/predict", "classify an image with the default model"),
            predict("/v1/models/{model}/predict", "classify an image with the named model"),
            predict(
                "/v1/models/{model}/versions/{version}/predict",
                "classify an image with one version of a model (the serving one)",
            ),
            Route(
                "GET",
                "/health",
                self.health,
                "gateway status, the default model and every model's state (503 when not serving)",
                "prediction",
                response={"application/json": {"$ref": "#/components/schemas/HealthResponse"}},
            ),
        ]
