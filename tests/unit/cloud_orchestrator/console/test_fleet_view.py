"""The Fleet page's query on a real SQLite database: counts over the filtered fleet,
server-side pages, the CLI's selectors, status and drift filters, bad parameters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.fleet_view import FleetQuery, fleet_page
from cloud_orchestrator.errors import InvalidRequest
from cloud_orchestrator.fleet.store import ReportedModel
from cloud_orchestrator.storage.models import Gateway, Model, ModelVersion


@pytest.fixture
def orch(tmp_path: Path) -> Iterator[Orchestrator]:
    orch = Orchestrator(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts")
    now = time.time()
    with orch.db.session() as session:  # a published version without a bundle file
        session.add(Model(id=1, name="gray", created_at=now))
        session.add(
            ModelVersion(
                model_id=1, version="2", sha256="a" * 64, size_bytes=10, signature="",
                key_id="k", published_at=now,
            )
        )  # fmt: skip
    for i in range(30):
        site = "berlin" if i % 3 == 0 else "paris"
        orch.fleet.register(
            f"gw-{i:02d}", f"127.0.0.1:{1000 + i}" if i < 10 else "", {"site": site}
        )
        orch.fleet.report(f"gw-{i:02d}", [ReportedModel("gray", "2" if i % 2 else "1", "READY")])
    with orch.db.session() as session:  # pull gw-15 seen long ago, push gw-01 never
        session.get(Gateway, "gw-15").last_seen = now - 3600  # type: ignore[union-attr]
        session.get(Gateway, "gw-01").last_seen = 0.0  # type: ignore[union-attr]
    orch.fleet.assign("gray", "site=berlin", "2")
    try:
        yield orch
    finally:
        orch.close()


def page(orch: Orchestrator, **query: object) -> dict[str, object]:
    return fleet_page(orch.db, orch.registry, FleetQuery(**query), 90.0)  # type: ignore[arg-type]


def test_counts_cover_the_fleet_and_pages_are_cut_on_the_server(orch: Orchestrator) -> None:
    first = page(orch, per_page=7)
    assert first["counts"] == {
        "total": 30, "online": 28, "offline": 1, "unobserved": 1,
        "push": 10, "pull": 20, "drift": 5,
    }  # fmt: skip
    assert first["matched"] == 30 and first["pages"] == 5
    ids = [g["id"] for g in first["gateways"]]  # type: ignore[attr-defined]
    assert ids == [f"gw-{i:02d}" for i in range(7)]
    last = page(orch, per_page=7, page=5)
    assert [g["id"] for g in last["gateways"]] == ["gw-28", "gw-29"]  # type: ignore[attr-defined]
    assert page(orch, per_page=7, page=9)["gateways"] == []


def test_drift_is_desired_against_running(orch: Orchestrator) -> None:
    drifting = page(orch, drift_only=True)
    ids = [g["id"] for g in drifting["gateways"]]  # type: ignore[attr-defined]
    # berlin (every third) should run 2; the even ones run 1.
    assert ids == ["gw-00", "gw-06", "gw-12", "gw-18", "gw-24"]
    entry = drifting["gateways"][0]["models"][0]  # type: ignore[index]
    assert entry == {"model": "gray", "desired": "2", "running": "1", "drift": True}


def test_selector_and_status_filters(orch: Orchestrator) -> None:
    berlin = page(orch, selector="site=berlin")
    assert berlin["counts"]["total"] == 10 and berlin["selector"] == "site=berlin"  # type: ignore[index]
    assert page(orch, selector="id=gw-03|gw-04")["matched"] == 2
    assert page(orch, selector="site!=berlin", status="unobserved")["matched"] == 1
    offline = page(orch, status="offline")
    assert [g["id"] for g in offline["gateways"]] == ["gw-15"]  # type: ignore[attr-defined]
    assert offline["counts"]["total"] == 30  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"per_page": 0}, "per_page"),
        ({"per_page": 501}, "per_page"),
        ({"page": 0}, "page"),
        ({"status": "asleep"}, "status"),
        ({"selector": "site"}, "selector term"),
    ],
)
def test_bad_parameters(orch: Orchestrator, query: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        page(orch, **query)
