"""The loop's summary: the rollout as the orchestrator reported it, and the lines
``python -m examples.loop`` prints (``--json`` prints the dictionary itself)."""

from __future__ import annotations

from typing import Any

__all__ = ["print_summary", "rollout_summary"]


def rollout_summary(rollout: dict[str, Any], gated: bool) -> dict[str, Any]:
    """What ``deploy --json`` said, down to each gateway's state and gate verdict."""
    return {
        "id": rollout.get("id"),
        "state": rollout.get("state"),
        "strategy": rollout.get("strategy"),
        "gated": gated,
        "targets": [
            {
                "gateway": t.get("gateway_id"),
                "state": t.get("state"),
                "evidence": (t.get("evidence") or {}).get("verdict"),
            }
            for t in rollout.get("targets", [])
        ],
    }


def print_summary(summary: dict[str, Any]) -> None:
    clean, shifted = summary["clean"], summary["shifted"]
    traffic = summary["traffic"]
    print(
        f"traffic: {traffic['sent']} shifted digits, live top-1 {traffic['top1_live']:.1%}, "
        f"{traffic['batches']} result batches, {traffic['hard_examples']} hard examples back"
    )
    print(
        f"fine-tuned on {summary['hard_examples_used']} hard examples + the original training data"
    )
    print(f"{'held-out set':<16}{'running v1':>12}{'candidate v2':>14}")
    print(f"{'clean (360)':<16}{clean['running']:>12.2%}{clean['candidate']:>14.2%}")
    print(f"{'shifted (360)':<16}{shifted['running']:>12.2%}{shifted['candidate']:>14.2%}")
    rollout = summary["rollout"]
    print(
        f"rollout {rollout['id']} {rollout['strategy']}: {rollout['state']}"
        f"{' (evidence-gated)' if rollout['gated'] else ' (no evidence gates in this deploy)'}"
    )
    for target in rollout["targets"]:
        verdict = target["evidence"]
        if verdict:
            print(
                f"  {target['gateway']} {target['state']}: {verdict['requests']} shadowed "
                f"requests, agreement {verdict['agreement']:.1%}, confidence shift "
                f"{verdict['confidence_shift']:.3f}, p95 ratio {verdict['latency_ratio']:.2f}"
            )
    print(f"every gateway serves digits {summary['versions']['served']}; {summary['seconds']} s")
