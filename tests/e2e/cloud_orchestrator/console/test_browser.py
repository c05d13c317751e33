"""The console in a real headless chromium against a real orchestrator and real gateways:
three `edge-server` processes in push mode (one trusts no signer, so it rejects every
bundle) and one in pull mode. Log in, see the fleet, start a canary rollout from the
deploy form and watch it finish, see a rollout halt when a gateway rejects the bundle,
see the feedback charts fill after predictions. Screenshots go to
test-artifacts/console/. One browser and one fleet serve the whole module, in order."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.operators import Operators
from cloud_orchestrator.fleet.selector import parse_labels
from cloud_orchestrator.registry.store import load_trusted_keys
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from tests.support.browser import ApiClient, chrome, screenshot, until
from tests.support.bundles import make_keys
from tests.support.orchestrator import OrchestratorProcess, Publisher, free_port
from tests.support.processes import ServerProcess
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

# The module's fixture starts five processes and a browser: on a busy 2-core machine that
# alone can take a minute, counted in the first test's time.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

HARD_EXAMPLES = {"policy": "hard_examples", "low_confidence": 0.9, "max_examples_per_hour": 200}
PUSH = {"gw-a": "site=berlin,tier=canary", "gw-b": "site=paris", "gw-bad": "site=lyon"}


@dataclass
class World:
    root: Path
    db: str
    artifacts: Path
    orchestrator: OrchestratorProcess
    base: str
    token: str
    gateways: dict[str, ServerProcess] = field(default_factory=dict)


def _push_gateway(root: Path, gateway_id: str, public_key: Path | None) -> ServerProcess:
    args = [
        "--model-root",
        str(gray_root(root / gateway_id)),
        "--gateway-id",
        gateway_id,
        "--rollback-window-seconds",
        "0",
        "--inference-workers",
        "1",
        "--preprocess-workers",
        "1",
    ]
    if public_key is not None:  # without trusted keys every bundle is rejected
        args += ["--trusted-keys", str(public_key)]
    gateway = ServerProcess(args)
    gateway.wait_serving()
    return gateway


def _prepare(db: str, artifacts: Path, bundles: list[Path], public: Path) -> str:
    """The registry and an admin, in-process (the CLI's own calls; test_api.py runs the
    CLI): subprocesses cost seconds each on a busy machine."""
    orch = Orchestrator(db, artifacts)
    try:
        for bundle in bundles:
            orch.registry.publish(bundle, load_trusted_keys([public]))
        return Operators(orch.db).add("alice", "admin")
    finally:
        orch.close()


def _register(db: str, artifacts: Path, gateways: dict[str, ServerProcess]) -> None:
    orch = Orchestrator(db, artifacts)
    try:
        for gateway_id, labels in PUSH.items():
            orch.fleet.register(gateway_id, gateways[gateway_id].target, parse_labels(labels))
    finally:
        orch.close()


def _start_gateways(root: Path, world: World, publisher: Publisher) -> None:
    """All four at once; every one that started is in ``world.gateways`` to be stopped."""
    with ThreadPoolExecutor(4) as pool:
        started = {
            gateway_id: pool.submit(
                _push_gateway,
                root,
                gateway_id,
                None if gateway_id == "gw-bad" else publisher.public_key,
            )
            for gateway_id in PUSH
        }
        started["edge-7"] = pool.submit(
            start_pull_gateway,
            gray_root(root / "edge-7"),
            world.orchestrator.target,
            publisher,
            "--feedback-bucket-seconds",
            "1",
        )
        errors = []
        for gateway_id, future in started.items():
            try:
                world.gateways[gateway_id] = future.result()
            except Exception as exc:
                errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console")
    db, artifacts = f"sqlite:///{root / 'orchestrator.db'}", root / "artifacts"
    key, public = make_keys(root / "keys")
    publisher = Publisher(key, public, root / "bundles")
    bundles = [
        publisher.gray_bundle(version, golden=False, feedback=HARD_EXAMPLES)
        for version in ("2", "3")
    ]
    token = _prepare(db, artifacts, bundles, public)
    port = free_port()
    orchestrator = OrchestratorProcess(
        db, artifacts, "--http-port", str(port), "--heartbeat-seconds", "1", "--poll-seconds", "0.3"
    )
    world = World(root, db, artifacts, orchestrator, f"http://127.0.0.1:{port}", token)
    try:
        _start_gateways(root, world, publisher)
        _register(db, artifacts, world.gateways)
        yield world
    finally:
        for gateway in world.gateways.values():
            gateway.terminate()
        orchestrator.terminate()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    driver = chrome()
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def _text(driver: Any, selector: str) -> str:
    found = _css(driver, selector)
    return str(found[0].text) if found else ""


def _fleet_rows(driver: Any) -> dict[str, str]:
    return {row.get_attribute("data-gateway"): row.text for row in _css(driver, "tr[data-gateway]")}


def test_log_in_and_see_the_fleet(world: World, browser: Any) -> None:
    browser.get(world.base + "/fleet")
    assert "/login" in browser.current_url  # no session yet
    _css(browser, "#token")[0].send_keys("eop_not-a-token")
    _css(browser, "#login")[0].click()
    assert "unknown" in _text(browser, ".error")
    _css(browser, "#token")[0].send_keys(world.token)
    _css(browser, "#login")[0].click()
    until(lambda: "/fleet?" in browser.current_url, what="redirect to /fleet")
    # The pull gateway appears once it subscribed; its last-seen makes it online.
    rows = until(
        lambda: (r := _fleet_rows(browser)) and "online" in r.get("edge-7", "") and r,
        timeout=30,
        what="the fleet with edge-7 online",
    )
    assert set(rows) == {"gw-a", "gw-b", "gw-bad", "edge-7"}
    assert "pull" in rows["edge-7"] and "site=lab" in rows["edge-7"]
    assert "push" in rows["gw-a"] and "site=berlin" in rows["gw-a"]
    counts = {c.get_attribute("data-count"): c.text for c in _css(browser, "[data-count]")}
    assert counts["total"].startswith("4") and counts["push"].startswith("3")
    assert counts["pull"].startswith("1") and counts["unobserved"].startswith("3")
    assert "unobserved" in rows["gw-a"] and "never" in rows["gw-a"]
    assert _text(browser, "#operator").startswith("alice")
    screenshot(browser, "fleet")
    # The CLI's selector syntax filters on the server.
    box = _css(browser, "#selector")[0]
    box.clear()
    box.send_keys("site=berlin|paris")
    _css(browser, "#apply")[0].click()
    until(lambda: set(_fleet_rows(browser)) == {"gw-a", "gw-b"}, what="filtered rows")
    assert "selector=site%3Dberlin%7Cparis" in browser.current_url
    # What a browser transfers for the fleet page (document, script, style, API call).
    transferred = browser.execute_script(
        "return performance.getEntriesByType('navigation').concat("
        "performance.getEntriesByType('resource')).reduce((s, e) => s + e.transferSize, 0)"
    )
    (screenshot(browser, "fleet-filtered").parent / "fleet-bytes.txt").write_text(
        f"{transferred}\n"
    )
    assert 0 < transferred < 60_000


def _fill(driver: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        box = _css(driver, f"#{name}")[0]
        box.clear()
        box.send_keys(value)


def _choose(driver: Any, select: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    until(lambda: _css(driver, f"{select} option[value='{value}']"), what=f"{select} {value}")
    Select(_css(driver, select)[0]).select_by_value(value)


def _deploy(driver: Any, base: str, version: str, form: dict[str, str]) -> str:
    driver.get(base + "/deploy")
    _choose(driver, "#model", "gray")
    _choose(driver, "#version", version)
    _fill(driver, form)
    _css(driver, "#start")[0].click()
    until(lambda: "/rollouts/r-" in driver.current_url, what="the rollout page")
    return str(driver.current_url.rsplit("/", 1)[1])


def _state(driver: Any) -> str:
    return _text(driver, "#rollout-state")


def test_canary_rollout_from_the_form(world: World, browser: Any) -> None:
    form = {
        "selector": "site=berlin|paris|lab",
        "strategy": "canary:1",
        "max_parallel": "2",
        "max_failures": "0",
        "watch_seconds": "0.5",
    }
    browser.get(world.base + "/deploy")
    _choose(browser, "#model", "gray")
    _choose(browser, "#version", "2")
    _fill(browser, form)
    _css(browser, "#dry-run")[0].click()
    waves = until(lambda: [w.text for w in _css(browser, "#planned-waves li")], what="dry run")
    assert waves == ["edge-7", "gw-a, gw-b"]
    screenshot(browser, "deploy-dry-run")
    api = ApiClient(world.base, world.token)
    assert api.call("GET", "/api/v1/rollouts") == (200, {"rollouts": []})  # nothing recorded

    rollout_id = _deploy(browser, world.base, "2", form)
    seen = set()

    def finished() -> bool:
        seen.add(_state(browser))
        return _state(browser) in ("SUCCEEDED", "HALTED", "CANCELLED")

    until(finished, timeout=90, what="the canary rollout to end")
    assert _state(browser) == "SUCCEEDED", _text(browser, "#reason")
    assert seen & {"PENDING", "RUNNING"}  # the page followed it live
    states = {
        r.get_attribute("data-gateway"): r.get_attribute("data-state")
        for r in _css(browser, "#targets tr[data-gateway]")
    }
    assert states == {"edge-7": "SUCCEEDED", "gw-a": "SUCCEEDED", "gw-b": "SUCCEEDED"}
    events = _text(browser, "#events")
    assert "DEPLOY" in events and "alice" in events and "WAVE_DONE" in events
    screenshot(browser, "rollout-canary")
    for gateway_id in ("gw-a", "gw-b", "edge-7"):
        assert serving_version(world.gateways[gateway_id].target) == "2"
    status, record = api.call("GET", f"/api/v1/rollouts/{rollout_id}")
    assert status == 200
    assert record["created_by"] == "alice (console)"
    assert all(t["bytes_sent"] > 0 for t in record["targets"] if t["gateway_id"] != "edge-7")


def test_a_rejected_bundle_halts_the_rollout(world: World, browser: Any) -> None:
    form = {"selector": "site=lyon", "strategy": "all", "max_failures": "0", "watch_seconds": "0"}
    _deploy(browser, world.base, "3", form)
    until(lambda: _state(browser) == "HALTED", timeout=60, what="the rollout to halt")
    reason = _text(browser, "#reason")
    assert "gw-bad" in reason and "REJECTED" in reason, reason
    row = _css(browser, "#targets tr[data-gateway='gw-bad']")[0]
    assert row.get_attribute("data-state") == "FAILED"
    screenshot(browser, "rollout-halted")
    assert serving_version(world.gateways["gw-bad"].target) == "1"
    # Retry-failed is offered for a halted rollout; cancel is not.
    assert _css(browser, "#retry-failed")[0].is_enabled()
    assert not _css(browser, "#cancel")[0].is_enabled()


def _image(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG")
    return buffer.getvalue()


def test_feedback_charts_fill_after_predictions(world: World, browser: Any) -> None:
    target = world.gateways["edge-7"].target
    with grpc.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for seed in range(40):
            stub.Predict(
                inference_pb2.PredictRequest(model_name="gray", image=_image(seed)), timeout=10
            )
    browser.get(world.base + "/feedback?model=gray&versions=2,3&hours=0.25")

    def predictions() -> int:
        cell = _css(browser, "section[data-version='2'] .predictions")
        return int(cell[0].text) if cell else 0

    until(lambda: predictions() >= 40, timeout=60, what="40 predictions on the feedback page")
    lines = _css(browser, "#classes-2 polyline")
    assert lines and any(line.get_attribute("points") for line in lines)
    bars = [int(b.get_attribute("data-count")) for b in _css(browser, "#confidence-2 rect")]
    assert len(bars) == 10 and sum(bars) == predictions()
    until(lambda: _css(browser, "#gallery-2 img"), timeout=30, what="hard examples")
    loaded = browser.execute_script(
        "return [...document.querySelectorAll('#gallery-2 img')].every(i => i.naturalWidth == 8)"
    )
    assert loaded  # the images came through the authenticated image route
    assert _text(browser, "section[data-version='3'] .predictions") == "0"
    screenshot(browser, "feedback")


def test_models_page_shows_where_versions_run(world: World, browser: Any) -> None:
    browser.get(world.base + "/models/gray")
    row = until(lambda: _css(browser, "tr[data-version='2']"), what="version 2")[0]
    assert "3 gateways" in row.text and "hard_examples" in row.text
    screenshot(browser, "models")
    client = ApiClient(world.base, world.token)
    status, detail = client.call("GET", "/api/v1/models/gray")
    assert status == 200 and [v["version"] for v in detail["versions"]] == ["3", "2"]


def test_fleet_after_the_rollouts(world: World, browser: Any) -> None:
    browser.get(world.base + "/fleet")
    rows = until(
        lambda: (r := _fleet_rows(browser)) and "gray 2" in r.get("gw-a", "") and r,
        what="gw-a running gray 2",
    )
    # A push gateway is seen when a rollout dials it: gw-a was, and is unobserved since.
    assert "ago" in rows["gw-a"] and "gray 2" in rows["edge-7"]
    # gw-bad refused version 3: the rollout's pin stays, and the orchestrator never heard
    # what it runs (a push gateway reports only through a successful push): drift.
    assert "(desired 3)" in rows["gw-bad"]
    row = _css(browser, "tr[data-gateway='gw-bad']")[0]
    assert "drift" in row.get_attribute("class")
    assert _text(browser, "[data-count='drift']").startswith("1")
    screenshot(browser, "fleet-after-rollouts")
