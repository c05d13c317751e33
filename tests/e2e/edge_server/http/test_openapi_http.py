"""GET /openapi.json from a real gateway: every operation it documents is served there
(no "no route" 404, no 405) when called with the shipped model's names. Load and unload
answer 401 here (no token sent): routed, and nothing changes."""

from __future__ import annotations

import requests

NAMES = {"{model}": "digits", "{version}": "1"}


def test_every_documented_operation_is_served(base: str) -> None:
    document = requests.get(f"{base}/openapi.json", timeout=5).json()
    assert document["info"]["title"] == "Edge inference gateway HTTP API"
    operations = 0
    for template, item in document["paths"].items():
        path = template
        for name, value in NAMES.items():
            path = path.replace(name, value)
        for method in item:
            reply = requests.request(method, f"{base}{path}", timeout=10)
            operations += 1
            if method == "get":  # every GET route answers HEAD with the same status, no body
                head = requests.head(f"{base}{path}", timeout=10)
                assert (head.status_code, head.content) == (reply.status_code, b""), path
            assert reply.status_code != 405, (method, path)
            if reply.status_code == 404:
                assert "no route" not in reply.text, (method, path)
    assert operations >= 15
