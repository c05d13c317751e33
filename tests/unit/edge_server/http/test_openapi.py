"""edge_server/http/openapi.py against the live route table of a gateway's endpoint:
every served route is documented, and nothing documented is not served."""

from __future__ import annotations

from pathlib import Path

from edge_server.app import Gateway
from edge_server.http.openapi import openapi_document
from tests.support.gateways import gateway_settings
from tests.support.model_factory import build_model_root


def test_the_document_and_the_router_agree(tmp_path: Path) -> None:
    gateway = Gateway(gateway_settings(build_model_root(tmp_path / "models")))
    try:
        served = {
            (route.method, route.resource.canonical)
            for route in gateway.http.app.router.routes()
            if route.method != "HEAD" and route.resource is not None  # HEAD: added to each GET
        }
        document = openapi_document(gateway.http.routes, "1.2.3")
    finally:
        gateway.parts.preprocess_pool.shutdown()
        gateway.parts.inference_pool.shutdown()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert served == documented
    assert ("POST", "/predict") in served and ("POST", "/v2/models/{model}/infer") in served
    assert document["openapi"].startswith("3.")
    load = document["paths"]["/v2/repository/models/{model}/load"]["post"]
    assert load["security"] == [{"managementToken": []}]
    predict = document["paths"]["/v1/models/{model}/versions/{version}/predict"]["post"]
    assert [p["name"] for p in predict["parameters"] if p["in"] == "path"] == ["model", "version"]
    assert {"multipart/form-data", "image/*"} == set(predict["requestBody"]["content"])
