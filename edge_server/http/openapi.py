"""``GET /openapi.json``: an OpenAPI 3 document written from the route table itself.

Paths, methods, query parameters, bodies and the management routes' bearer security
come from the same ``Route`` rows the server registers, so a route cannot be served
undocumented or documented unserved (tests/unit/edge_server/http/test_openapi.py checks
it against the live router too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from edge_server.http.routes import Route

_PARAMETER = re.compile(r"{(\w+)}")
_ERROR = {
    "description": "an error: see docs/http.md for the statuses",
    "content": {"application/json": {"$ref": "#/components/schemas/Error"}},
}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "description": "gateway routes: {error: {code, message}}; /v2 routes: {error, code}",
        "type": "object",
        "required": ["error"],
    },
    "PredictResponse": {
        "description": "edge.v1 PredictResponse as JSON under its proto field names",
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "class_id": {"type": "integer"},
            "label": {"type": "string"},
            "confidence": {"type": "number"},
            "top_k": {"type": "array", "items": {"type": "object"}},
            "timings": {"type": "object"},
            "request_id": {"type": "string"},
        },
    },
    "HealthResponse": {"description": "edge.v1 HealthResponse as JSON", "type": "object"},
    "ServerMetadata": {"type": "object", "required": ["name", "version", "extensions"]},
    "ModelMetadata": {"type": "object", "required": ["name", "platform", "inputs", "outputs"]},
    "InferRequest": {"type": "object", "required": ["inputs"]},
    "InferResponse": {"type": "object", "required": ["model_name", "outputs"]},
}


def _content(media: Any) -> dict[str, Any]:
    return {kind: {"schema": schema} for kind, schema in media.items()}


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAMETER.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "schema": {"type": kind}, "description": text}
        for name, kind, text in route.query
    ]
    answer: dict[str, Any] = {"description": "OK"}
    if route.response:
        answer["content"] = _content(route.response)
    operation: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": parameters,
        "responses": {"200": answer, "default": _ERROR},
    }
    if route.request:
        operation["requestBody"] = {"required": True, "content": _content(route.request)}
    if route.management:
        operation["security"] = [{"managementToken": []}]
    return operation


def openapi_document(routes: Sequence[Route], version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Edge inference gateway HTTP API", "version": version},
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "managementToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the gateway's --management-token",
                }
            },
        },
    }
