"""The issue's fleet targets judged on a run (like benchmarks/target_verdicts.py does for
the gateway), and the Markdown section of bench-results/fleet.md."""

from __future__ import annotations

from typing import Any

__all__ = ["markdown", "verdicts"]

SUBSCRIBE_SECONDS = 60.0
IDLE_CORES, IDLE_MB = 0.15, 600.0
ASSIGN_P99_SECONDS, ASSIGN_MAX_SECONDS = 3.0, 10.0


def _verdict(name: str, met: bool, measured: str) -> dict[str, Any]:
    return {"target": name, "met": met, "measured": measured}


def verdicts(run: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """Targets at ``size`` gateways (10,000; the largest size of a quick run)."""
    sub = run.get("subscribe", {}).get(str(size), {})
    got = sub.get("subscribed", 0)
    seconds = sub.get("seconds_all")
    measured = (
        f"{got}/{size} in {seconds} s"
        if seconds is not None
        else f"{got}/{size} after {sub.get('timeout', '?')} s"
        if sub
        else "not tried"
    )
    out = [
        _verdict(
            f"{size} subscribed within {SUBSCRIBE_SECONDS:.0f} s",
            seconds is not None and seconds <= SUBSCRIBE_SECONDS,
            measured,
        )
    ]
    idle = run.get("idle", {}).get(str(size), {})
    cores, mb = idle.get("max_replica_cores"), idle.get("max_replica_rss_mb")
    out.append(
        _verdict(
            f"idle < {IDLE_CORES} core and < {IDLE_MB:.0f} MB per orchestrator "
            f"with {size} subscribed",
            got == size and cores is not None and cores < IDLE_CORES and mb < IDLE_MB,
            f"{cores} core, {mb} MB with {got} subscribed" if idle else "not measured",
        )
    )
    assign = run.get("assign", {})
    fleet = assign.get("expected", 0)
    within3, within10 = assign.get("within_3s", 0), assign.get("within_10s", 0)
    latency = assign.get("latency", {})
    out.append(
        _verdict(
            f"assign reaches 99 % of {size} within {ASSIGN_P99_SECONDS:.0f} s, all within "
            f"{ASSIGN_MAX_SECONDS:.0f} s",
            fleet == size and within3 >= 0.99 * size and within10 == size,
            f"on {fleet} gateways: {within3} within 3 s, {within10} within 10 s, "
            f"p50 {latency.get('p50')} s p99 {latency.get('p99')} s max {latency.get('max')} s"
            if assign
            else "not measured",
        )
    )
    failover = run.get("failover")
    if failover:
        moved, reported = failover.get("moved", {}), failover.get("reported", {})
        out.append(
            _verdict(
                "killing one replica moves its gateways to the other with no lost status events",
                bool(moved.get("complete"))
                and bool(reported.get("complete"))
                and failover.get("lost_events") == 0
                and failover.get("gateways_with_event_stored") == reported.get("gateways"),
                f"{moved.get('moved')}/{moved.get('expected')} moved (max "
                f"{moved.get('latency', {}).get('max')} s); events stored for "
                f"{failover.get('gateways_with_event_stored')}/{reported.get('gateways')}",
            )
        )
    return out


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _backend_rows(name: str, run: dict[str, Any]) -> list[str]:
    rows = [f"| {name} | error | {run['error']} |"] if "error" in run else []
    enroll = run.get("enroll", {})
    rows.append(
        f"| {name} | setup | auth {run.get('auth', '-')}, bundles in {run.get('artifacts', '-')}"
        + (f"; {enroll.get('count')} enrolled in {enroll.get('seconds')} s" if enroll else "")
        + " |"
    )
    for size, sub in run.get("subscribe", {}).items():
        idle = run.get("idle", {}).get(size, {})
        rows.append(
            f"| {name} | subscribe {size} | {sub.get('subscribed')}/{size} subscribed, "
            f"all in {_cell(sub.get('seconds_all'))} s (timeout {sub.get('timeout')} s), "
            f"p50 {_cell(sub.get('delays', {}).get('p50'))} s; reconnects "
            f"{sub.get('reconnects')}; simulator {sub.get('simulator_cores')} core; server fds "
            f"{sub.get('server_fds')} |"
        )
        rows.append(
            f"| {name} | idle at {size} | {idle.get('cores')} core total, per replica "
            f"{[r.get('cores') for r in idle.get('replicas', [])]} core, "
            f"{[r.get('rss_mb') for r in idle.get('replicas', [])]} MB; simulator "
            f"{idle.get('simulator_cores')} core; whole machine busy "
            f"{_cell(idle.get('machine_busy_cores'))} core |"
        )
    assign, fetch, res = run.get("assign", {}), run.get("fetch", {}), run.get("results", {})
    lat = assign.get("latency", {})
    rows.append(
        f"| {name} | assign to {assign.get('expected')} | seen by {lat.get('count')}: p50 "
        f"{_cell(lat.get('p50'))} s, p99 {_cell(lat.get('p99'))} s, max {_cell(lat.get('max'))} s;"
        f" {assign.get('within_3s')} within 3 s, {assign.get('within_10s')} within 10 s |"
    )
    secs = fetch.get("seconds", {})
    rows.append(
        f"| {name} | fetch {fetch.get('bundle_bytes', 0) >> 20} MB x {fetch.get('expected')} | "
        f"{fetch.get('fetched')} fetched ({fetch.get('sha256_ok')} sha256 ok, "
        f"{fetch.get('sha256_bad')} bad), {fetch.get('interrupted')} cut and "
        f"{fetch.get('resumed')} resumed, {fetch.get('reported')} reported; done p50 "
        f"{_cell(secs.get('p50'))} s, max {_cell(secs.get('max'))} s; orchestrator peak RSS "
        f"{fetch.get('peak_rss_mb')} MB |"
    )
    growth = res.get("db_bytes_after", 0) - res.get("db_bytes_before", 0)
    rows.append(
        f"| {name} | results from {res.get('gateways')} | {res.get('acked')}/"
        f"{res.get('sent_batches_expected')} batches in {res.get('seconds')} s "
        f"({res.get('batches_per_second')}/s); DB +{growth} "
        f"bytes ({_cell(res.get('db_growth_per_batch'))} per batch) |"
    )
    rollout = run.get("rollout")
    if rollout:
        listing, showing = (
            rollout.get("rollouts_cli_seconds", {}),
            rollout.get("rollout_cli_seconds", {}),
        )
        rows.append(
            f"| {name} | rollout to every gateway (waves 1 %, 10 %, 100 %) | "
            f"{rollout.get('state')} in {rollout.get('seconds')} s, targets "
            f"{rollout.get('targets')}; `rollouts` median {_cell(listing.get('median'))} s max "
            f"{_cell(listing.get('max'))} s, `rollout ID` median {_cell(showing.get('median'))} "
            f"s max {_cell(showing.get('max'))} s ({showing.get('count')} calls; `models`, the "
            f"start-up baseline, median "
            f"{_cell(rollout.get('models_cli_seconds', {}).get('median'))} s) |"
        )
    failover = run.get("failover")
    if failover:
        moved, reported = failover.get("moved", {}), failover.get("reported", {})
        lat = moved.get("latency", {})
        rows.append(
            f"| {name} | replica 2 killed (SIGKILL) {failover.get('killed_after_assign_s')} s "
            f"after an assign | {moved.get('moved')}/{moved.get('expected')} of its gateways "
            f"subscribed to replica 1 again: p50 {_cell(lat.get('p50'))} s, max "
            f"{_cell(lat.get('max'))} s; ACTIVATED acknowledged for "
            f"{reported.get('acknowledged')}/{reported.get('gateways')} gateways, stored for "
            f"{failover.get('gateways_with_event_stored')}; lost {failover.get('lost_events')} |"
        )
    return rows


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "## Fleet scale",
        "",
        f"Source: {document.get('source')}; sizes {document.get('sizes')}"
        f"{' (quick)' if document.get('quick') else ''}; heartbeat "
        f"{document.get('heartbeat_seconds')} s; the simulated fleet in "
        f"{document.get('simulator_processes', 1)} simulator process(es).",
        "",
        "| backend | phase | result |",
        "|---|---|---|",
    ]
    for name, run in document.get("backends", {}).items():
        lines += _backend_rows(name, run)
    ceiling = document.get("simulator_ceiling")
    if ceiling:
        lines += [
            "",
            f"Simulator alone (benchmarks/fleet/ceiling.py, a stand-in that only answers "
            f"Subscribe): {ceiling.get('subscribed')}/{ceiling.get('requested')} subscribed in "
            f"{_cell(ceiling.get('seconds_all'))} s with {ceiling.get('reconnects')} reconnects; "
            f"simulator {ceiling.get('simulator_cores')} core while subscribing, "
            f"{ceiling.get('simulator_idle_cores')} core idle.",
        ]
    floor = document.get("assign_floor")
    if floor and floor.get("latency"):
        latency = floor["latency"]
        lines += [
            "",
            f"Assign floor (benchmarks/fleet/ceiling.py `measure_assign`: two stand-ins that "
            f"store and check nothing, each sending a new version to its half of the "
            f"{floor.get('expected')} gateways at once; the gateways activate and report as "
            f"in the assign phase): p50 {latency.get('p50')} s, p99 {latency.get('p99')} s, "
            f"max {latency.get('max')} s, {floor.get('within_3s')} within 3 s; stand-ins "
            f"{floor.get('standin_cpu_seconds')} CPU-s, simulator "
            f"{floor.get('simulator_cpu_seconds')} CPU-s. What this machine and simulator "
            f"allow an assign when the orchestrator does no work.",
        ]
    lines += [
        "",
        "### Targets",
        "",
        "| backend | target | verdict | measured |",
        "|---|---|---|---|",
    ]
    for name, items in document.get("verdicts", {}).items():
        for item in items:
            verdict = "met" if item["met"] else "**missed**"
            lines.append(f"| {name} | {item['target']} | {verdict} | {item['measured']} |")
    return "\n".join(lines) + "\n"
