"""``python -m benchmarks.fleet.metrics_scrape [--gateways N] [--scrapes K]``: what one
scrape of the orchestrator's metrics costs with N gateways registered, on SQLite and
PostgreSQL: the median of K fleet queries and of K whole pages
(cloud_orchestrator/fleet/census.py, cloud_orchestrator/metrics.py). Not part of make test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from benchmarks.fleet.postgres import ThrowawayPostgres
from cloud_orchestrator.fleet.census import take_census
from cloud_orchestrator.metrics import OrchestratorMetrics
from cloud_orchestrator.storage.db import Database
from cloud_orchestrator.storage.models import Gateway, GatewayDrift, GatewayModel, Rollout

WINDOW = 35.0  # the presence window of `serve`'s defaults


def fill(db: Database, gateways: int) -> None:
    """1 in 10 push gateways, 1 in 7 not seen for an hour; every gateway runs digits 2 and
    reported its drift, 1 in 5 drifting; 500 rollouts."""
    now = time.time()
    with db.session() as session:
        session.add_all(
            Gateway(
                id=f"gw-{i}",
                address="" if i % 10 else f"10.0.{i // 250}.{i % 250}:50051",
                labels={"site": f"s{i % 50}", "hardware": "rpi4"},
                token="",
                ca_pem="",
                registered_at=now,
                last_seen=now - (3600 if i % 7 == 0 else 0),
                gateway_version="1",
            )
            for i in range(gateways)
        )
        session.flush()
        session.add_all(
            GatewayModel(gateway_id=f"gw-{i}", model_name="digits", active_version="2",
                         state="READY", updated_at=now)
            for i in range(gateways)
        )  # fmt: skip
        session.add_all(
            GatewayDrift(gateway_id=f"gw-{i}", model_name="digits", model_version="2",
                         drifting=i % 5 == 0, measured_at=now, received_at=now)
            for i in range(gateways)
        )  # fmt: skip
        session.add_all(
            Rollout(
                id=f"r-{i}",
                model_name="m",
                version="1",
                selector="all",
                strategy="all",
                max_parallel=4,
                max_failures="0",
                watch_seconds=0.0,
                state=("SUCCEEDED", "HALTED", "RUNNING")[i % 3],
                created_at=now,
                updated_at=now,
            )
            for i in range(500)
        )


def measure(url: str, gateways: int, scrapes: int) -> str:
    db = Database(url)
    try:
        fill(db, gateways)
        metrics = OrchestratorMetrics(lambda: take_census(db, time.time(), WINDOW))
        metrics.render()  # connections made, statements prepared
        queries, pages = [], []
        for _ in range(scrapes):
            started = time.perf_counter()
            take_census(db, time.time(), WINDOW)
            queries.append(time.perf_counter() - started)
            started = time.perf_counter()
            metrics.render()
            pages.append(time.perf_counter() - started)
    finally:
        db.dispose()
    return (
        f"{db.engine.dialect.name}: {gateways} gateways, fleet query median "
        f"{statistics.median(queries) * 1e3:.2f} ms, whole page median "
        f"{statistics.median(pages) * 1e3:.2f} ms ({scrapes} scrapes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-scrape-") as folder:
        print(measure(f"sqlite:///{folder}/orchestrator.db", args.gateways, args.scrapes))
    postgres = ThrowawayPostgres(prefix="edge-pg-scrape-")
    try:
        print(measure(postgres.url, args.gateways, args.scrapes))
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
