"""A benchmark gateway seen through the HAProxy overload front (deploy/haproxy/).

``FrontedGateway`` starts an ``edge-server`` (GatewayProcess) and HAProxy with the
shipped configuration in front of it; ``target`` is the front's address, RSS and CPU
include HAProxy, everything else is the gateway's. Used by the overload phase.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks import models, realtime_priority
from benchmarks.cpu_accounting import rss_mb
from benchmarks.footprint.server_processes import free_port
from benchmarks.server_processes import GatewayProcess

DEPLOY = models.REPO / "deploy" / "haproxy"


def available() -> bool:
    return shutil.which("haproxy") is not None


class FrontedGateway:
    def __init__(
        self,
        model_root: Path,
        extra_args: list[str],
        patches: list[str] | None,
        maxconn: int,
    ) -> None:
        self.gateway = GatewayProcess(model_root, extra_args, patches)
        self.maxconn = maxconn
        self.proxy: subprocess.Popen[bytes] | None = None
        self.scheduling = "not started"
        self.target = ""

    def __enter__(self) -> FrontedGateway:
        self.gateway.start()
        port = free_port()
        env = {
            **os.environ,
            "EDGE_FRONT_DIR": str(DEPLOY),
            "EDGE_FRONT_BIND": f"127.0.0.1:{port}",
            "EDGE_GATEWAY_ADDR": self.gateway.target,
            "EDGE_FRONT_MAXCONN": str(self.maxconn),
        }
        # Above the gateway's priority, as deploy/haproxy/edge-gateway.cfg recommends:
        # SCHED_FIFO where permitted (deploy/haproxy/edge-front.service does the same).
        prefix = realtime_priority.realtime(realtime_priority.FRONT_RT_PRIORITY)
        self.scheduling = realtime_priority.describe(prefix)
        self.proxy = subprocess.Popen(
            [*prefix, "haproxy", "-f", str(DEPLOY / "edge-gateway.cfg"), "-db"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    self.target = f"127.0.0.1:{port}"
                    return self
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("haproxy did not listen (is deploy/haproxy/edge-gateway.cfg valid?)")

    @property
    def pids(self) -> list[int]:
        return [*self.gateway.pids, *([self.proxy.pid] if self.proxy else [])]

    def rss_mb(self) -> float:
        front = rss_mb(self.proxy.pid) if self.proxy and self.proxy.poll() is None else 0.0
        return self.gateway.rss_mb() + front

    def alive(self) -> bool:
        return self.gateway.alive() and self.proxy is not None and self.proxy.poll() is None

    def stop(self) -> int | None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.kill()
            self.proxy.wait()
        return self.gateway.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gateway, name)  # counters, health waits: the gateway's own

    def __exit__(self, *exc: object) -> None:
        self.stop()
