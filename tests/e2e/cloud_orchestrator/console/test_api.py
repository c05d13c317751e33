"""The console's JSON API over HTTP against a real `edge-orchestrator serve --http-port`:
every route's errors (401, 403, 404, 409, 415, 422, 400 with a JSON error body), token
and cookie sessions with CSRF, the read-only role, operator actions recorded in the
rollout events, and `--console-no-auth` only on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.operators import Operators
from cloud_orchestrator.registry.store import load_trusted_keys
from tests.support.browser import ApiClient
from tests.support.bundles import make_keys
from tests.support.orchestrator import (
    ORCHESTRATOR,
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    free_port,
)

pytestmark = pytest.mark.slow


@dataclass
class Console:
    base: str
    admin: str
    reader: str
    db: str
    artifacts: Path


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console-api")
    db, artifacts = f"sqlite:///{root / 'orchestrator.db'}", root / "artifacts"
    key, public = make_keys(root / "keys")
    bundle = Publisher(key, public, root / "bundles").gray_bundle("2", golden=False)
    orch = Orchestrator(db, artifacts)  # setup in-process: the CLI's own calls, faster
    try:
        orch.registry.publish(bundle, load_trusted_keys([public]))
        for gateway_id, labels in (("pull-1", "a"), ("pull-2", "b")):
            orch.fleet.register(gateway_id, labels={"site": labels})
        admin = {"token": Operators(orch.db).add("ops", "admin")}
        reader = {"token": Operators(orch.db).add("viewer", "read-only")}
    finally:
        orch.close()
    port = free_port()
    # --no-rollouts: what the console records stays as it left it (no runner claims it).
    process = OrchestratorProcess(db, artifacts, "--http-port", str(port), "--no-rollouts")
    try:
        yield Console(f"http://127.0.0.1:{port}", admin["token"], reader["token"], db, artifacts)
    finally:
        process.terminate()


def _error(result: tuple[int, Any], status: int, code: str, *words: str) -> str:
    got, body = result
    assert got == status, (got, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    message = str(body["error"]["message"])
    for word in words:
        assert word in message, message
    return message


ROUTES = [
    ("GET", "/api/v1/gateways"),
    ("GET", "/api/v1/gateways/pull-1"),
    ("GET", "/api/v1/models"),
    ("GET", "/api/v1/models/gray"),
    ("GET", "/api/v1/rollouts"),
    ("GET", "/api/v1/rollouts/r-x"),
    ("POST", "/api/v1/rollouts"),
    ("POST", "/api/v1/rollouts/dry-run"),
    ("POST", "/api/v1/rollouts/r-x/cancel"),
    ("POST", "/api/v1/rollouts/r-x/resume"),
    ("POST", "/api/v1/rollouts/r-x/retry-failed"),
    ("GET", "/api/v1/feedback/gray"),
    ("GET", "/api/v1/hard-examples/1/image"),
    ("GET", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_credential(console: Console, method: str, path: str) -> None:
    anonymous = ApiClient(console.base)
    body = {} if method == "POST" else None
    _error(anonymous.call(method, path, body), 401, "unauthenticated")
    forged = ApiClient(console.base, "eop_forged")
    _error(forged.call(method, path, body), 401, "unauthenticated", "unknown")


def test_a_malformed_authorization_header_is_401(console: Console) -> None:
    client = ApiClient(console.base)
    result = client.call("GET", "/api/v1/gateways", headers={"Authorization": "Basic abc"})
    _error(result, 401, "unauthenticated", "Bearer")


def test_metrics_on_the_console_port_need_no_credential(console: Console) -> None:
    status, page = ApiClient(console.base).call("GET", "/metrics")
    assert status == 200
    text = page.decode()
    assert "edge_orchestrator_gateways" in text and "edge_orchestrator_rollouts" in text


def test_pages_redirect_to_the_login_and_static_files_are_public(console: Console) -> None:
    client = ApiClient(console.base)
    status, page = client.call("GET", "/fleet")  # urllib follows the 303
    assert status == 200 and b'name="token"' in page
    status, script = client.call("GET", "/static/console.js")
    assert status == 200 and b"X-CSRF-Token" in script


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/rollouts", {"model": "gray", "version": "2", "selector": "all"}),
        ("/api/v1/rollouts/r-x/cancel", None),
        ("/api/v1/rollouts/r-x/resume", None),
        ("/api/v1/rollouts/r-x/retry-failed", None),
    ],
)
def test_read_only_operators_cannot_act(console: Console, path: str, body: Any) -> None:
    reader = ApiClient(console.base, console.reader)
    _error(reader.call("POST", path, body), 403, "forbidden", "viewer", "read-only", "admin")


def test_read_only_operators_read_and_preview(console: Console) -> None:
    reader = ApiClient(console.base, console.reader)
    status, fleet = reader.call("GET", "/api/v1/gateways")
    assert status == 200 and fleet["counts"]["total"] == 2
    status, plan = reader.call(
        "POST",
        "/api/v1/rollouts/dry-run",
        {"model": "gray", "version": "2", "strategy": "canary:1"},
    )
    assert status == 200, plan
    assert plan["waves"] == [
        {"wave": 1, "gateways": ["pull-1"]},
        {"wave": 2, "gateways": ["pull-2"]},
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/gateways/nope",
        "/api/v1/models/nope",
        "/api/v1/rollouts/r-nope",
        "/api/v1/feedback/nope",
        "/api/v1/feedback/gray?versions=9",
        "/api/v1/hard-examples/999/image",
        "/api/v1/nothing-here",
    ],
)
def test_unknown_things_are_404(console: Console, path: str) -> None:
    admin = ApiClient(console.base, console.admin)
    _error(admin.call("GET", path), 404, "not_found")


@pytest.mark.parametrize("action", ["cancel", "resume", "retry-failed"])
def test_actions_on_unknown_rollouts_are_404(console: Console, action: str) -> None:
    admin = ApiClient(console.base, console.admin)
    _error(admin.call("POST", f"/api/v1/rollouts/r-nope/{action}"), 404, "not_found", "r-nope")


def test_deploying_an_unknown_version_is_404(console: Console) -> None:
    admin = ApiClient(console.base, console.admin)
    for path in ("/api/v1/rollouts", "/api/v1/rollouts/dry-run"):
        result = admin.call("POST", path, {"model": "gray", "version": "9"})
        _error(result, 404, "not_found", "no version '9'")


@pytest.mark.parametrize(
    ("method", "path", "body", "words"),
    [
        ("GET", "/api/v1/gateways?per_page=0", None, ("per_page",)),
        ("GET", "/api/v1/gateways?page=x", None, ("page",)),
        ("GET", "/api/v1/gateways?status=asleep", None, ("status",)),
        ("GET", "/api/v1/gateways?selector=site", None, ("selector term",)),
        ("GET", "/api/v1/rollouts?limit=0", None, ("limit",)),
        ("GET", "/api/v1/feedback/gray?since=10&until=5", None, ("until",)),
        ("GET", "/api/v1/feedback/gray?since=yesterday", None, ("since",)),
        ("GET", "/api/v1/feedback/gray?versions=1,2,3", None, ("two",)),
        ("GET", "/api/v1/hard-examples/x/image", None, ("number",)),
        ("POST", "/api/v1/rollouts", {"version": "2"}, ("model",)),
        ("POST", "/api/v1/rollouts", {"model": "gray", "strategy": "fast"}, ("strategy",)),
        ("POST", "/api/v1/rollouts", {"model": "gray", "max_parallel": 0}, ("max-parallel",)),
        ("POST", "/api/v1/rollouts", {"model": "gray", "max_parallel": "x"}, ("max_parallel",)),
        ("POST", "/api/v1/rollouts", {"model": "gray", "selector": "site=zz"}, ("matches no",)),
        ("POST", "/api/v1/rollouts/dry-run", {"model": "gray", "max_failures": "x"}, ()),
        ("POST", "/api/v1/rollouts", [1, 2], ("object",)),
    ],
)
def test_invalid_input_is_422(
    console: Console, method: str, path: str, body: Any, words: tuple[str, ...]
) -> None:
    admin = ApiClient(console.base, console.admin)
    _error(admin.call(method, path, body), 422, "invalid", *words)


def test_bodies_that_are_not_json(console: Console) -> None:
    admin = ApiClient(console.base, console.admin)
    broken = admin.call(
        "POST", "/api/v1/rollouts", raw=b"{nope", headers={"Content-Type": "application/json"}
    )
    _error(broken, 400, "bad_request", "not JSON")
    form = admin.call(
        "POST", "/api/v1/rollouts", raw=b"model=gray", headers={"Content-Type": "text/plain"}
    )
    _error(form, 415, "unsupported_media_type")


def test_cookie_sessions_need_the_csrf_token(console: Console) -> None:
    browser = ApiClient(console.base)
    _error(browser.call("POST", "/api/v1/session", {}), 422, "invalid", "token")
    _error(browser.call("POST", "/api/v1/session", {"token": "eop_x"}), 401, "unauthenticated")
    session = browser.log_in(console.admin)
    assert session["operator"] == "ops" and session["role"] == "admin"
    cookie = next(iter(browser.jar))
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") in (
        "Strict",
        "strict",
    )
    status, me = browser.call("GET", "/api/v1/session")
    assert status == 200 and me["operator"] == "ops"
    csrf, browser.csrf = browser.csrf, ""
    _error(browser.call("POST", "/api/v1/rollouts/r-x/cancel"), 403, "csrf")
    wrong = browser.call("DELETE", "/api/v1/session", headers={"X-CSRF-Token": "guess"})
    _error(wrong, 403, "csrf")
    browser.csrf = csrf
    _error(browser.call("POST", "/api/v1/rollouts/r-x/cancel"), 404, "not_found")
    browser.csrf = ""  # logging in again over the session (as another operator) needs none
    status, other = browser.call("POST", "/api/v1/session", {"token": console.reader})
    assert status == 200 and other["operator"] == "viewer"
    browser.csrf = other["csrf_token"]
    status, _ = browser.call("DELETE", "/api/v1/session")
    assert status == 200
    _error(browser.call("GET", "/api/v1/gateways"), 401, "unauthenticated")


def test_actions_are_recorded_with_the_operator(console: Console) -> None:
    admin = ApiClient(console.base, console.admin)
    request = {"model": "gray", "version": "2", "selector": "site=a", "watch_seconds": 0}
    status, record = admin.call("POST", "/api/v1/rollouts", request)
    assert status == 201, record
    path = f"/api/v1/rollouts/{record['id']}"
    assert record["state"] == "PENDING" and record["created_by"] == "ops (console)"
    assert record["waves"] == [{"wave": 1, "gateways": 1, "states": {"PENDING": 1}}]
    _error(admin.call("POST", path + "/resume"), 409, "conflict", "waiting for a runner")
    _error(admin.call("POST", path + "/retry-failed"), 422, "invalid", "cancel it")
    status, cancelled = admin.call("POST", path + "/cancel")
    assert status == 200 and cancelled["state"] == "CANCELLED"
    _error(admin.call("POST", path + "/cancel"), 409, "conflict", "CANCELLED")
    status, resumed = admin.call("POST", path + "/resume")
    assert status == 200 and resumed["state"] == "PENDING"
    kinds = [(e["kind"], e["actor"]) for e in resumed["events"]]
    assert ("DEPLOY", "ops") in kinds and ("CANCEL", "ops") in kinds
    assert ("RESUME", "ops") in kinds
    status, few = admin.call("GET", path + "?target_state=PENDING&targets_limit=0")
    assert status == 200 and few["targets"] == [] and few["targets_total"] == 1
    _error(admin.call("GET", path + "?targets_limit=-1"), 422, "invalid", "targets_limit")
    status, listed = admin.call("GET", "/api/v1/rollouts")
    assert status == 200 and listed["rollouts"][0]["id"] == record["id"]


def test_no_auth_only_on_loopback(console: Console, tmp_path: Path) -> None:
    result = subprocess.run(
        [ORCHESTRATOR, "serve", "--db", console.db, "--artifacts", str(console.artifacts),
         "--port", "0", "--http-port", "0", "--http-host", "0.0.0.0", "--console-no-auth"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1  # as serve's other option checks (--tls-cert)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-orchestrator: error: --console-no-auth")
    port = free_port()
    local = OrchestratorProcess(
        console.db, console.artifacts, "--http-port", str(port), "--console-no-auth",
        "--no-rollouts",
    )  # fmt: skip
    try:
        status, fleet = ApiClient(f"http://127.0.0.1:{port}").call("GET", "/api/v1/gateways")
        assert status == 200 and fleet["counts"]["total"] == 2
        assert any("NO AUTHENTICATION" in line for line in local.log)
    finally:
        local.terminate()


def test_operators_cli(console: Console) -> None:
    listed = cli_json("operators", db=console.db, artifacts=console.artifacts)
    assert [(o["operator"], o["role"]) for o in listed] == [
        ("ops", "admin"),
        ("viewer", "read-only"),
    ]
    again = cli("operators", "add", "ops", db=console.db, artifacts=console.artifacts, check=False)
    assert again.returncode == 1
    assert again.stderr.startswith("edge-orchestrator: error: operator 'ops' exists")
    orch = Orchestrator(console.db, console.artifacts)
    try:
        token = Operators(orch.db).add("tmp", "admin")
    finally:
        orch.close()
    temporary = ApiClient(console.base)
    temporary.log_in(token)
    cli("operators", "remove", "tmp", db=console.db, artifacts=console.artifacts)
    _error(ApiClient(console.base, token).call("GET", "/api/v1/models"), 401, "unauthenticated")
    _error(temporary.call("GET", "/api/v1/models"), 401, "unauthenticated")  # its session ended
