"""Start the real `edge-server` CLI as a subprocess on free loopback ports."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
LISTENING = re.compile(r"listening: gRPC [^:]+:(\d+)(?: \(TLS\))?, HTTP [^:]+:(\d+)")


# Sets the open-files limit in a fresh interpreter, then execs the server (same PID). Not
# preexec_fn: that runs Python between fork and exec in a copy of this multi-threaded test
# process (gRPC's threads, log readers), which can hang on a lock another thread held at
# the fork; one run saw edge-server never start that way.
_WITH_OPEN_FILES_LIMIT = (
    "import os, resource, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)


class ServerProcess:
    """A running edge-server; its stderr is collected in ``log`` by a reader thread."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        nofile: tuple[int, int] | None = None,
    ) -> None:
        """``nofile``: the (soft, hard) open-files limit the server starts with."""
        command = [str(BIN / "edge-server"), "--grpc-port", "0", "--http-port", "0", *args]
        if nofile is not None:
            soft, hard = nofile
            command = [sys.executable, "-c", _WITH_OPEN_FILES_LIMIT, str(soft), str(hard), *command]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        self.log: list[str] = []
        self._ports = threading.Event()
        self.grpc_port = 0
        self.http_port = 0
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ports.wait(30):
            self.kill()
            raise RuntimeError("edge-server did not start:\n" + "".join(self.log))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            match = LISTENING.search(line)
            if match and not self._ports.is_set():  # the primary's line, not a worker's
                self.grpc_port, self.http_port = int(match[1]), int(match[2])
                self._ports.set()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                time.sleep(0.05)
        raise TimeoutError("gateway never became SERVING:\n" + "".join(self.log))

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
