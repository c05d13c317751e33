"""Operator actions on rollouts on a real SQLite database: the deploy form's checks, the
dry run, cancel and resume with the operator in the event log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.console.rollout_actions import DeployRequest, RolloutActions
from cloud_orchestrator.errors import Conflict, InvalidRequest, NotFound
from cloud_orchestrator.storage.models import Model, ModelVersion, Rollout


@pytest.fixture
def actions(tmp_path: Path) -> Iterator[RolloutActions]:
    orch = Orchestrator(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "artifacts")
    with orch.db.session() as session:
        session.add(Model(id=1, name="gray", created_at=time.time()))
        session.add(
            ModelVersion(model_id=1, version="2", sha256="a" * 64, size_bytes=7, signature="",
                         key_id="k", published_at=time.time())
        )  # fmt: skip
    for i in range(5):
        orch.fleet.register(f"gw-{i}", labels={"site": "a" if i < 3 else "b"})
    try:
        yield RolloutActions(orch.rollouts, "console-test")
    finally:
        orch.close()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "model is required"),
        ({"model": ""}, "model is required"),
        ({"model": ["gray"]}, "model must be a string"),
        ({"model": "gray", "max_parallel": 1.5}, "whole number"),
        ({"model": "gray", "watch_seconds": "soon"}, "watch_seconds must be a number"),
        ({"model": "gray", "max_parallel": True}, "max_parallel must be a number"),
    ],
)
def test_the_form_is_checked(body: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        DeployRequest(body)


def test_dry_run_plans_without_recording(actions: RolloutActions) -> None:
    plan = actions.preview(DeployRequest({"model": "gray", "strategy": "waves:1,50%,100%"}))
    assert plan["version"] == "2" and plan["gateways"] == 5 and plan["size_bytes"] == 7
    assert [w["gateways"] for w in plan["waves"]] == [["gw-0"], ["gw-1", "gw-2"], ["gw-3", "gw-4"]]
    assert actions.store.recent() == []
    for body, words in (
        ({"model": "gray", "max_failures": "lots"}, "lots"),
        ({"model": "gray", "max_parallel": 0}, "max_parallel"),
        ({"model": "gray", "rate_per_minute": -1}, "rate_per_minute"),
        ({"model": "gray", "strategy": "canary:0"}, "wave size"),
    ):
        with pytest.raises(InvalidRequest, match=words):
            actions.preview(DeployRequest(body))
    with pytest.raises(NotFound):
        actions.preview(DeployRequest({"model": "gray", "version": "9"}))


def test_cancel_and_resume_are_recorded_with_the_operator(actions: RolloutActions) -> None:
    record = actions.deploy(DeployRequest({"model": "gray", "selector": "site=b"}), "alice")
    assert record.state == "PENDING" and record.created_by == "alice (console)"
    with pytest.raises(Conflict, match="waiting for a runner"):
        actions.resume(record.id, "alice")
    assert actions.cancel(record.id, "bob").state == "CANCELLED"
    with pytest.raises(Conflict, match="CANCELLED"):
        actions.cancel(record.id, "bob")
    resumed = actions.resume(record.id, "carol")
    assert resumed.state == "PENDING" and resumed.owner == ""
    events = [(e["kind"], e["actor"], e["owner"]) for e in actions.events(record.id)]
    assert events == [
        ("CREATED", "", "alice (console)"),
        ("DEPLOY", "alice", "console-test"),
        ("CANCEL", "bob", "console-test"),
        ("RESUME", "carol", "console-test"),
    ]


def test_resume_takes_an_abandoned_rollout_and_refuses_the_rest(actions: RolloutActions) -> None:
    record = actions.deploy(DeployRequest({"model": "gray"}), "alice")
    with actions.db.session() as session:  # claimed by a process whose lease ran out
        row = session.get(Rollout, record.id)
        assert row is not None
        row.state, row.owner, row.lease_expires_at = "RUNNING", "dead-1", time.time() - 1
    assert actions.resume(record.id, "alice").owner == ""
    with actions.db.session() as session:
        row = session.get(Rollout, record.id)
        assert row is not None
        row.state, row.owner, row.lease_expires_at = "RUNNING", "live-1", time.time() + 60
    with pytest.raises(Conflict, match="under live-1"):
        actions.resume(record.id, "alice")
    with actions.db.session() as session:
        row = session.get(Rollout, record.id)
        assert row is not None
        row.state = "HALTED"
    with pytest.raises(Conflict, match="retry-failed"):
        actions.resume(record.id, "alice")
    with pytest.raises(NotFound):
        actions.resume("r-nope", "alice")
