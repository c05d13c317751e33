"""A real Prometheus server (Debian's `prometheus` package, installed by `make test`) on a
free loopback port with its storage in a temporary folder; and the deploy/prometheus
rules with every ``for:`` shortened, so an alert fires within seconds in a test."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.orchestrator import free_port
from tests.support.paths import REPO

RULES = REPO / "deploy" / "prometheus"
INSTALLED = shutil.which("prometheus") is not None and shutil.which("promtool") is not None
MISSING = "prometheus and promtool are installed by `make test` (make prometheus-bin: apt)"


def quick_rules(folder: Path, hold: str = "1s") -> list[Path]:
    """Copies of the rule files whose every ``for:`` is ``hold`` (rule files are plain
    YAML: one ``for:`` line per alert)."""
    copies = []
    for source in sorted(RULES.glob("*-rules.yml")):
        text = re.sub(r"(?m)^(\s+for:) \S+$", rf"\1 {hold}", source.read_text())
        copy = folder / source.name
        copy.write_text(text)
        copies.append(copy)
    return copies


class PrometheusProcess:
    """Scrapes ``jobs`` (job name -> host:port targets) and evaluates ``rule_files`` every
    ``interval``; stopped by PID with ``stop``."""

    def __init__(
        self, folder: Path, jobs: dict[str, list[str]], rule_files: list[Path], interval: str
    ) -> None:
        config = {  # JSON is YAML: no YAML library needed
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in jobs.items()
            ],
        }
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prometheus.yml").write_text(json.dumps(config, indent=2))
        self.port = free_port()
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(30.0)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus did not become ready:\n{self.log.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """``data`` of a Prometheus HTTP API answer (``/api/v1/...``)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as reply:
            answer = json.loads(reply.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expression: str) -> dict[str, float]:
        """An instant query: each series' job/instance (or its labels) -> value."""
        result = self.api("query", query=expression)["result"]
        return {
            ",".join(f"{k}={v}" for k, v in sorted(r["metric"].items()) if k != "__name__"): float(
                r["value"][1]
            )
            for r in result
        }

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
