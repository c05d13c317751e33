"""deploy/prometheus checked by Prometheus's own tool: the example configuration and both
rule files load, and the rule unit tests (deploy/prometheus/tests/*.yml: series that fire
each alert and series that must not) pass."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.prometheus import INSTALLED, MISSING, RULES

pytestmark = pytest.mark.skipif(not INSTALLED, reason=MISSING)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=RULES, capture_output=True, text=True, timeout=60
    )


def test_the_example_configuration_and_its_rule_files_load() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_the_rule_files_pass_the_rules_check() -> None:
    rule_files = sorted(path.name for path in RULES.glob("*-rules.yml"))
    assert rule_files == ["edge-gateway-rules.yml", "edge-orchestrator-rules.yml"]
    result = promtool("check", "rules", *rule_files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_rule_test_and_they_pass() -> None:
    tests = sorted(str(path.relative_to(RULES)) for path in RULES.glob("tests/*.yml"))
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests) == 2
    alerts = {
        line.split(":", 1)[1].strip()
        for path in RULES.glob("*-rules.yml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("- alert:")
    }
    tested = {
        line.split(":", 1)[1].strip()
        for path in RULES.glob("tests/*.yml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("alertname:")
    }
    assert alerts == tested
    assert len(alerts) == 12


def test_every_alert_tells_its_severity_and_what_to_do() -> None:
    for path in RULES.glob("*-rules.yml"):
        blocks = path.read_text().split("- alert: ")[1:]
        for block in blocks:
            name = block.split("\n", 1)[0]
            assert "severity: warning" in block or "severity: critical" in block, name
            assert "summary:" in block and "description:" in block, name
            assert "\n        for: " in block, name
