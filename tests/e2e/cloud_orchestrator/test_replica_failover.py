"""Two orchestrator replicas on one PostgreSQL (bundles in the database too), real pull
gateways given both addresses: killing the replica that holds some of them moves those
gateways to the other (they reconnect by themselves), and the versions published around
the kill still reach every gateway with every status event stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud_orchestrator.app import Orchestrator
from tests.support.orchestrator import (  # noqa: F401
    OrchestratorProcess,
    Publisher,
    cli,
    fresh_database,
    postgres_server,
    publisher,
    until,
)
from tests.support.processes import ServerProcess
from tests.support.pull_gateway import gray_root, serving_version, start_pull_gateway

pytestmark = pytest.mark.slow

IN_DATABASE = Path("postgresql")  # --artifacts postgresql: replicas share no folder
GATEWAYS = ("gw-a", "gw-b", "gw-c")
SERVE = ("--heartbeat-seconds", "1", "--desired-poll-seconds", "0.2", "--no-rollouts")


def subscribed_here(replica: OrchestratorProcess) -> set[str]:
    """Gateways whose stream this replica holds now (its log: subscribed/unsubscribed)."""
    holding: set[str] = set()
    for line in list(replica.log):
        found = re.search(r"gateway (\S+) (subscribed|unsubscribed)", line)
        if found:
            (holding.add if found[2] == "subscribed" else holding.discard)(found[1])
    return holding


def publish(publisher: Publisher, db: str, version: str) -> None:
    cli(
        "publish",
        str(publisher.gray_bundle(version)),
        "--trusted-keys",
        str(publisher.public_key),
        db=db,
        artifacts=IN_DATABASE,
    )


def test_killing_a_replica_moves_its_gateways_and_loses_no_status_event(
    postgres_server: str,
    publisher: Publisher,
    tmp_path: Path,
) -> None:
    db = fresh_database(postgres_server)
    replicas = [OrchestratorProcess(db, IN_DATABASE, *SERVE) for _ in range(2)]
    both = "ipv4:" + ",".join(r.target for r in replicas)
    gateways: dict[str, ServerProcess] = {}
    try:
        cli("assign", "gray", "--gateways", "site=lab", "--version", "latest", db=db,
            artifacts=IN_DATABASE)  # fmt: skip
        publish(publisher, db, "3")
        for gateway_id in GATEWAYS:
            root = gray_root(tmp_path / gateway_id)
            gateways[gateway_id] = start_pull_gateway(
                root, both, publisher, "--gateway-id", gateway_id
            )
        for gateway in gateways.values():
            until(lambda g=gateway: serving_version(g.target) == "3", timeout=60)
        until(lambda: subscribed_here(replicas[0]) | subscribed_here(replicas[1]) == set(GATEWAYS))

        # The replica holding more streams dies without a goodbye (SIGKILL), right after a
        # publish: its gateways are fetching or reporting when their connection drops.
        victim, survivor = sorted(replicas, key=lambda r: -len(subscribed_here(r)))
        moved = subscribed_here(victim)
        assert moved, "one of the replicas holds at least one stream"
        publish(publisher, db, "4")
        victim.kill()

        until(lambda: moved <= subscribed_here(survivor), timeout=60)
        for gateway in gateways.values():
            until(lambda g=gateway: serving_version(g.target) == "4", timeout=90)

        orchestrator = Orchestrator(db, IN_DATABASE)
        try:

            def activations(gateway_id: str) -> set[str]:
                events = orchestrator.fleet.events(gateway_id, "gray")
                return {e.model_version for e in events if e.kind == "ACTIVATED"}

            # Every activation each gateway made is stored, including those it reported
            # while (or because) its replica died: a refused report stays queued.
            for gateway_id in GATEWAYS:
                until(lambda g=gateway_id: activations(g) >= {"3", "4"}, timeout=30)
            known = {g.id for g in orchestrator.fleet.gateways()}
        finally:
            orchestrator.close()
        assert known >= set(GATEWAYS)
    finally:
        for gateway in gateways.values():
            gateway.kill()
        for replica in replicas:
            replica.kill()
