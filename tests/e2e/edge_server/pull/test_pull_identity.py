"""A real pull-mode `edge-server` enrolls with a one-time token, converges to the version
assigned to it, and after a restart uses the secret it stored (the token is used up, so
enrolling again would fail) to converge to the next version."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    cli_json,
    publisher,
    until,
)
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

pytestmark = pytest.mark.slow


def test_a_pull_gateway_enrolls_once_and_keeps_its_identity(
    publisher: Publisher, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    token_file = tmp_path / "enroll.token"

    def run(*args: str) -> str:
        return cli(*args, db=db, artifacts=artifacts).stdout

    created = run("enrollment-tokens", "create", "--one-time", "--auto-admit",
                  "--output", str(token_file))  # fmt: skip
    assert "(one-time, auto-admit); written to" in created
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    run("assign", "gray", "--gateways", "site=lab", "--version", "latest")
    run("publish", str(publisher.gray_bundle("3")), "--trusted-keys", str(publisher.public_key))
    orchestrator = OrchestratorProcess(db, artifacts, "--heartbeat-seconds", "1")
    models = gray_root(tmp_path / "models")
    identity = models / ".orchestrator-identity.json"
    enrolled = ("--orchestrator-enrollment-token-file", str(token_file))
    gateway = start_pull_gateway(models, orchestrator.target, publisher, *enrolled)
    try:
        until(lambda: serving_version(gateway.target) == "3", timeout=60)
        assert stat.S_IMODE(identity.stat().st_mode) == 0o600
        stored = json.loads(identity.read_text())
        assert stored["gateway_id"] == "edge-7" and stored["secret"].startswith("edge-gw-")
        assert any("enrolled at orchestrator" in line for line in gateway.log)
        states = cli_json("gateways", "identities", db=db, artifacts=artifacts)
        assert [(i["gateway_id"], i["state"]) for i in states] == [("edge-7", "ADMITTED")]

        assert gateway.terminate() == 0
        gateway = start_pull_gateway(models, orchestrator.target, publisher, *enrolled)
        run("publish", str(publisher.gray_bundle("4")), "--trusted-keys", str(publisher.public_key))
        until(lambda: serving_version(gateway.target) == "4", timeout=60)
        assert json.loads(identity.read_text()) == stored  # the same secret, not re-enrolled
        assert not any("enrolled at orchestrator" in line for line in gateway.log)
        tokens = cli_json("enrollment-tokens", "list", db=db, artifacts=artifacts)
        assert [t["uses"] for t in tokens] == [1]
    finally:
        gateway.terminate()
        orchestrator.terminate()
