"""Why ``feedback`` or ``export-hard-examples`` has nothing to show, as one line that
says what to do: results only come from gateways connected in pull mode, a model's
privacy policy may keep every input on the gateway, or they are of other versions."""

from __future__ import annotations

from typing import Any

from cloud_orchestrator.errors import NotFound
from cloud_orchestrator.registry.store import VersionInfo, version_sort_key

__all__ = ["why_no_batches", "why_no_hard_examples"]

PULL_MODE = (
    "gateways send results only while connected to `edge-orchestrator serve` with "
    "`edge-server --orchestrator HOST:PORT` (a gateway that is only pushed to sends none)"
)


def _versions(versions: Any) -> str:
    ordered = sorted(set(versions), key=version_sort_key)
    return f"version{'s' if len(ordered) > 1 else ''} {', '.join(ordered)}"


def why_no_batches(orch: Any, model: str, version: str) -> str:
    """For a model (and version) with no result batch stored."""
    if version:
        others = {v for g in orch.feedback.summarize(model).gateways for v in g.versions}
        if others:
            return f"gateways sent results for {_versions(others)} only (drop --version for all)"
    return f"no gateway has sent results for {model}; {PULL_MODE}"


def why_no_hard_examples(orch: Any, model: str, version: str) -> str:
    """For a model (and version) with no hard example stored."""
    stored = orch.feedback.hard_example_counts(model)
    if version and stored:
        return (
            f"no hard examples of {model} version {version}; there are some of "
            f"{_versions(stored)} (drop --version for all)"
        )
    closed = _closed_versions(orch, model, version)
    if closed:
        return (
            f"the privacy policy of {model} {_versions(closed)} is 'aggregates' (no input data "
            'leaves the gateway); publish a version whose manifest has "feedback": '
            '{"policy": "hard_examples"} to collect hard examples'
        )
    batches = orch.feedback.summarize(model, version).batches
    if not batches:
        return why_no_batches(orch, model, version)
    return (
        f"gateways sent {batches} result batch{'es' if batches > 1 else ''} for {model} but no "
        "hard examples (only "
        "inputs predicted below the policy's low_confidence, or on which a shadow version "
        "disagreed, are sent)"
    )


def _closed_versions(orch: Any, model: str, version: str) -> list[str]:
    """The published versions in scope when none of them lets hard examples leave the
    gateway; empty when one does, or when none is published."""
    try:
        published = orch.registry.versions(model)
    except NotFound:
        return []
    scope = [info for info in published if info.version == version or not version]
    closed = [info.version for info in scope if not _allows_examples(info)]
    return closed if scope and len(closed) == len(scope) else []


def _allows_examples(info: VersionInfo) -> bool:
    """The gateway's own reading of the signed manifest's policy."""
    from edge_contracts.errors import ManifestError
    from edge_contracts.feedback_policy import policy_from_manifest
    from edge_contracts.manifest import parse_manifest

    try:
        return policy_from_manifest(parse_manifest(info.manifest)).allows_examples
    except ManifestError:
        return False
