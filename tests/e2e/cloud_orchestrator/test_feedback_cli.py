"""`edge-orchestrator feedback` and `export-hard-examples` when there is little or
nothing to show: they say why (no gateway in pull mode sent results, the model's privacy
policy forbids input data, none of that version) instead of printing an empty table or
silently writing nothing. The real CLI on a real SQLite registry; results are stored
through the feedback store the OrchestratorService writes them with."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cloud_orchestrator.app import Orchestrator
from cloud_orchestrator.feedback.store import AggregateIn, BatchIn, HardExampleIn
from tests.support.orchestrator import ORCHESTRATOR, Publisher, cli, gray_png, publisher  # noqa: F401

HARD_EXAMPLES = {"feedback": {"policy": "hard_examples", "low_confidence": 0.5}}
PULL_MODE = "`edge-server --orchestrator HOST:PORT`"


class Registry:
    def __init__(self, folder: Path) -> None:
        self.db = f"sqlite:///{folder / 'orchestrator.db'}"
        self.artifacts = folder / "artifacts"
        self.out = folder / "hard"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, db=self.db, artifacts=self.artifacts, check=False)

    def receive(self, version: str, examples: int = 0) -> None:
        """A result batch from gateway gw-1, as ReportResults stores it."""
        aggregate = AggregateIn(
            "gray", version, 0.0, 60, [(3, "class-3", 4)], [0] * 10, 4, 0, 4, 800, 300, 200, 300
        )
        hard = [
            HardExampleIn(
                "gray",
                version,
                3,
                "class-3",
                0.2,
                "low_confidence",
                gray_png(80 + i),
                "image/png",
                1.0,
            )
            for i in range(examples)
        ]
        orch = Orchestrator(self.db, self.artifacts)
        try:
            batch_id = f"gw-1-{version}-{examples}"
            assert orch.feedback.store(BatchIn(batch_id, "gw-1", 1.0, [aggregate], hard))
        finally:
            orch.close()


@pytest.fixture
def registry(publisher: Publisher, tmp_path: Path) -> Registry:
    """gray 1 published with the default policy (aggregates only), gray 2 allowing hard
    examples."""
    reg = Registry(tmp_path)
    for bundle in (
        publisher.gray_bundle("1", golden=False),
        publisher.gray_bundle("2", golden=False, **HARD_EXAMPLES),
    ):
        publish = reg.run("publish", str(bundle), "--trusted-keys", str(publisher.public_key))
        assert publish.returncode == 0, publish.stderr
    return reg


def only_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


# -- feedback --------------------------------------------------------------------------------


def test_no_batches_says_results_come_from_pull_mode_gateways(registry: Registry) -> None:
    result = registry.run("feedback", "gray")
    assert result.returncode == 0, result.stderr
    line = only_line(result.stdout)
    assert line.startswith("gray (all versions): 0 batches: no gateway has sent results")
    assert PULL_MODE in line

    as_json = json.loads(registry.run("feedback", "gray", "--json").stdout)
    assert as_json == {"model": "gray", "version": "all", "batches": 0, "gateways": []}


def test_no_batches_of_one_version_names_the_versions_that_have_some(registry: Registry) -> None:
    registry.receive("1")
    result = registry.run("feedback", "gray", "--version", "2")
    assert result.returncode == 0, result.stderr
    assert only_line(result.stdout) == (
        "gray 2: 0 batches: gateways sent results for version 1 only (drop --version for all)"
    )
    shown = registry.run("feedback", "gray").stdout
    assert shown.startswith("gray (all versions): 1 batches\nGATEWAY") and "gw-1" in shown


# -- export-hard-examples --------------------------------------------------------------------


def test_export_under_a_policy_without_hard_examples_says_so(registry: Registry) -> None:
    registry.receive("1")
    result = registry.run("export-hard-examples", "gray", str(registry.out), "--version", "1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert only_line(result.stderr) == (
        "edge-orchestrator: error: nothing exported: the privacy policy of gray version 1 is "
        "'aggregates' (no input data leaves the gateway); publish a version whose manifest "
        'has "feedback": {"policy": "hard_examples"} to collect hard examples'
    )
    assert not registry.out.exists()  # no empty folder or index left behind


def test_export_before_any_gateway_sent_results_says_so(registry: Registry) -> None:
    result = registry.run("export-hard-examples", "gray", str(registry.out), "--json")
    assert result.returncode == 1
    reason = json.loads(result.stdout)["reason"]
    assert reason.startswith("no gateway has sent results for gray") and PULL_MODE in reason
    assert only_line(result.stderr) == f"edge-orchestrator: error: nothing exported: {reason}"
    assert json.loads(result.stdout) == {
        "written": 0,
        "already_there": 0,
        "dir": str(registry.out),
        "reason": reason,
    }


def test_export_when_results_came_without_hard_examples_says_so(registry: Registry) -> None:
    registry.receive("2")
    result = registry.run("export-hard-examples", "gray", str(registry.out))
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        "edge-orchestrator: error: nothing exported: gateways sent 1 result batch for gray "
        "but no hard examples (only inputs predicted below the policy's low_confidence, or "
        "on which a shadow version disagreed, are sent)"
    )


def test_export_of_a_version_without_examples_names_those_with_some(registry: Registry) -> None:
    registry.receive("2", examples=2)
    result = registry.run("export-hard-examples", "gray", str(registry.out), "--version", "3")
    assert result.returncode == 1
    assert only_line(result.stderr) == (
        "edge-orchestrator: error: nothing exported: no hard examples of gray version 3; "
        "there are some of version 2 (drop --version for all)"
    )


def test_export_says_what_it_wrote_and_what_was_there(registry: Registry) -> None:
    registry.receive("2", examples=2)
    first = registry.run("export-hard-examples", "gray", str(registry.out))
    assert first.returncode == 0, first.stderr
    assert only_line(first.stdout) == f"wrote 2 hard examples of gray to {registry.out}"
    assert len(list((registry.out / "class-3").glob("*.png"))) == 2

    again = registry.run("export-hard-examples", "gray", str(registry.out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "written": 0,
        "already_there": 2,
        "dir": str(registry.out),
        "reason": "",
    }
    text = registry.run("export-hard-examples", "gray", str(registry.out)).stdout
    assert only_line(text) == f"wrote 0 hard examples of gray to {registry.out} (2 already there)"
