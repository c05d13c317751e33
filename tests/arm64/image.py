"""`make arm64-image`: Dockerfile.arm64 built by buildah and run by podman, on emulated arm64.

1. the build context is the committed tree (`git archive HEAD`): what .dockerignore and
   the Dockerfile see in a fresh clone, nothing untracked;
2. the base: python:3.11-slim-bookworm cannot be pulled here, so its stand-in is the
   Debian bookworm arm64 userland of build_rootfs.sh (python3 3.11.2, pip, venv, glibc
   2.36) imported as an image with the same config (PATH, LANG, CMD), passed to the real
   Dockerfile through its own `ARG PYTHON_IMAGE`; docs/arm64.md says what differs;
3. `buildah bud` builds Dockerfile.arm64 as it is: both stages, every RUN under qemu;
4. `podman run` starts the image's ENTRYPOINT as its USER with `--workers 2` (a replica
   process: edge_server.workers must have shipped), and the checks: the image's own
   HEALTHCHECK run by the engine until healthy, the process's uid on the host is the
   image's USER, and from the host over 127.0.0.1 reflection, Predict (same class and
   confidence as the x86 gateway), /metrics, /healthz; `podman stop` drains it: exit 0.

Exits 1 with a message naming the failed step. Needs root and Linux >= 6.7 (userns.py).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from tests.arm64.aarch64_env import (
    REPO,
    SmokeFailure,
    Steps,
    build_rootfs,
    committed_tree,
    rootfs_cached,
)
from tests.arm64.engine import Engine, EngineFailure, install_tools, runtime_options
from tests.arm64.gateway_probe import (
    WORKER_SERVING,
    CheckFailure,
    check_services,
    free_port,
    x86_reference,
)
from tests.arm64.sample_model import model_and_sample
from tests.arm64.userns import Namespace, NamespaceError

DOCKERFILE = "Dockerfile.arm64"
TAG = "localhost/edge-gateway:arm64-test"
WORKERS = 2


def built_steps(output: str) -> str:
    steps = re.findall(r"^\[\d+/\d+\] STEP \d+/\d+: (\w+)", output, re.MULTILINE)
    cached = output.count("Using cache")
    return f"{len(steps)} steps ({', '.join(steps)}), {cached} from the layer cache"


def container_args(models: Path, rootfs: Path, ports: dict[str, int]) -> list[str]:
    """`podman run` options (engine.py says why each is needed here), image, then CMD."""
    return [
        "--detach", *runtime_options(rootfs / "proc" / "cpuinfo"),
        f"--volume={models}:/models:ro",
        # The HEALTHCHECK probes 127.0.0.1:$EDGE_GRPC_PORT, as the Dockerfile documents.
        f"--env=EDGE_GRPC_PORT={ports['grpc']}",
        TAG,
        # Appended to the ENTRYPOINT; the last --host wins: with host networking 0.0.0.0
        # would listen on every interface of this machine.
        "--host", "127.0.0.1", "--grpc-port", str(ports["grpc"]),
        "--http-port", str(ports["http"]), "--gateway-id", "arm64-image",
        "--workers", str(WORKERS), "--management-port", str(ports["management"]),
    ]  # fmt: skip


def wait_healthy(engine: Engine, name: str, timeout: float) -> float:
    """`podman healthcheck run` (the image's HEALTHCHECK command, in the container) until 0."""
    started = time.monotonic()
    while True:
        state = engine.inspect("container", "inspect", name)["State"]
        if not state["Running"]:
            logs = engine.attempt("logs", "--tail=30", name).stdout
            raise CheckFailure(f"container exited {state['ExitCode']}:\n{logs}")
        if engine.attempt("healthcheck", "run", name, timeout=60).returncode == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            logs = engine.attempt("logs", "--tail=30", name).stdout
            raise CheckFailure(f"HEALTHCHECK not healthy after {timeout:.0f} s:\n{logs}")
        time.sleep(2)


def wait_worker(engine: Engine, name: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = WORKER_SERVING.search(engine.attempt("logs", name).stdout)
        if match:
            return match[0]
        time.sleep(1)
    raise CheckFailure(f"no `worker 1 ... is serving` in the container's log in {timeout:.0f} s")


def process_uids(pid: int) -> list[str]:
    """Real, effective, saved and filesystem uid of a host PID."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("Uid:"):
            return line.split()[1:]
    raise CheckFailure(f"/proc/{pid}/status has no Uid line")


def run_container(
    engine: Engine, models: Path, rootfs: Path, sample: tuple[str, bytes], reference: Any,
    timeout: float, step: Steps,
) -> None:  # fmt: skip
    name = f"edge-arm64-image-{os.getpid()}"
    ports = {"grpc": free_port(), "http": free_port(), "management": free_port()}
    engine.podman("run", f"--name={name}", *container_args(models, rootfs, ports))
    try:
        healthy = wait_healthy(engine, name, timeout)
        state = engine.inspect("container", "inspect", name)["State"]
        if state["Health"]["Status"] != "healthy":
            raise CheckFailure(f"podman reports health {state['Health']['Status']!r}")
        step(f"container {name}: HEALTHCHECK healthy {healthy:.1f} s after start")
        step.detail(wait_worker(engine, name, timeout))
        user = engine.inspect("image", "inspect", TAG)["Config"]["User"].split(":")[0]
        uids = process_uids(state["Pid"])
        if set(uids) != {user}:
            raise CheckFailure(f"the gateway runs as uids {uids}, the image's USER is {user}")
        step.detail(f"gateway PID {state['Pid']} on the host runs as uid {user} (USER)")
        target = f"127.0.0.1:{ports['grpc']}"
        try:
            lines = check_services(target, ports["http"], *sample, reference)
        except (grpc.RpcError, OSError) as exc:
            raise CheckFailure(f"check against the container failed: {exc}") from exc
        for line in lines:
            step.detail(line)
        step("host-side checks passed")
        engine.podman("stop", "--time=30", name, timeout=90)
        code = engine.inspect("container", "inspect", name)["State"]["ExitCode"]
        if code != 0:
            logs = engine.attempt("logs", "--tail=30", name).stdout
            raise CheckFailure(f"the gateway exited {code} after podman stop:\n{logs}")
        step("podman stop (SIGTERM): exited 0")
    finally:
        engine.attempt("rm", "--force", "--time=5", name)


def image_check(timeout: float) -> list[str]:
    step = Steps("arm64-image")
    install_tools()
    cached = rootfs_cached()
    rootfs = build_rootfs()
    step(f"rootfs {'reused from cache' if cached else 'built'}: {rootfs.relative_to(REPO)}")
    with tempfile.TemporaryDirectory(prefix="arm64-image-") as tmp, Namespace() as ns:
        workdir = Path(tmp)
        engine = Engine(ns)
        base, imported = engine.standin_base(rootfs, workdir)
        step(f"stand-in for python:3.11-slim-bookworm {'imported' if imported else 'reused'}")
        step.detail(base)
        context = workdir / "context"
        commit = committed_tree(context)
        output = engine.build(context, DOCKERFILE, base, TAG, rootfs / "proc" / "cpuinfo")
        step(f"buildah bud -f {DOCKERFILE} (commit {commit}) -> {TAG}")
        step.detail(built_steps(output))
        config = engine.inspect("image", "inspect", TAG)
        if not config.get("Healthcheck"):
            raise CheckFailure(f"{TAG} has no HEALTHCHECK: is it still in {DOCKERFILE}?")
        health = " ".join(config["Healthcheck"]["Test"])[:80]
        image_config = config["Config"]
        step.detail(
            f"{config['Architecture']}, USER {image_config['User']}, ENTRYPOINT "
            f"{image_config['Entrypoint']}, HEALTHCHECK {health}..."
        )
        models, model, image, described = model_and_sample(workdir)
        reference = x86_reference(models, model, image, str(workdir))
        step(f"x86 reference on {described}: class {reference.class_id}")
        run_container(engine, models, rootfs, (model, image), reference, timeout, step)
    return step.lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--start-timeout", type=float, default=240.0, help="seconds to healthy")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        summary = image_check(args.start_timeout)
    except (SmokeFailure, CheckFailure, EngineFailure, NamespaceError) as exc:
        elapsed = time.monotonic() - started
        print(f"arm64-image: FAILED after {elapsed:.1f} s: {exc}", file=sys.stderr)
        return 1
    print(f"arm64-image: PASSED in {time.monotonic() - started:.1f} s")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
