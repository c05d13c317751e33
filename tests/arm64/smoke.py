"""`make arm64-smoke`: the installed edge-server on an emulated aarch64 Debian bookworm.

No Docker and no host binfmt_misc: `build_rootfs.sh` unpacks a bookworm arm64 userland
(cached in .cache/arm64/rootfs) and its Python runs under qemu-aarch64-static inside a
user namespace with a private binfmt_misc (userns.py). This driver, from the x86 host:

1. builds the project wheel from the committed tree (`git archive HEAD`, so untracked
   files cannot leak in) and checks that it ships every package of that tree;
2. resolves it with every runtime dependency as aarch64 wheels for CPython 3.11
   (`pip download --only-binary=:all: --platform manylinux*_aarch64`; cached in
   .cache/arm64/wheels, tried offline first) and installs them with `pip install --target`
   into ROOTFS/opt/edge-gateway;
3. under emulation, from an empty folder with only that site on PYTHONPATH: imports every
   module the gateway and the client need and every package, and fails if any project
   module, or any sys.path entry, comes from the checkout or the wheel's source copy;
4. starts the installed console script `edge-server` (the wheel's entry point) from that
   empty folder with `--workers 2` (a second emulated process, edge_server.workers) on
   127.0.0.1 with a shipped model (examples/models/digits, or a tests/support/model_factory model);
5. checks from the host: grpc.health.v1 SERVING, reflection (v1alpha and v1) lists the
   services, Predict on a sample image gives the x86 gateway's class and a confidence
   within 1e-4, /metrics and /healthz answer; then SIGTERM and a clean exit 0.

Timings under emulation say nothing about a board's speed: nothing here asserts them.
Exits 1 with a message naming the failed step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from tests.arm64.aarch64_env import (
    PYTHON_VERSION,
    REPO,
    SITE,
    SmokeFailure,
    Steps,
    build_rootfs,
    console_script,
    emulated_env,
    emulated_python,
    install,
    installed_wheels,
    project_wheel,
    resolve_aarch64_wheels,
    rootfs_cached,
)
from tests.arm64.gateway_probe import (
    WORKER_SERVING,
    CheckFailure,
    check_services,
    gateway,
    wait_serving,
    x86_reference,
)
from tests.arm64.installed_check import PROBE, ShipFailure, check_wheel, judge, wheel_modules
from tests.arm64.sample_model import model_and_sample
from tests.arm64.userns import Namespace, NamespaceError

WORKERS = 2  # more than one: the supervisor starts a replica (edge_server.workers)
IMPORTS_FAILED = (
    "the installed-imports probe under qemu (a SIGSEGV in onnxruntime means the rootfs "
    "lacks its ARM proc/cpuinfo: delete .cache/arm64/rootfs to rebuild it)"
)


def run_probe(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise SmokeFailure(f"{IMPORTS_FAILED} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


def describe_probe(probe: dict[str, Any]) -> str:
    if probe["machine"] != "aarch64" or not probe["python"].startswith(PYTHON_VERSION + "."):
        raise SmokeFailure(f"emulated interpreter is not aarch64 CPython {PYTHON_VERSION}: {probe}")
    keys = ("machine", "python", "glibc", "onnxruntime", "providers", "grpcio", "numpy")
    return ", ".join(f"{key} {probe[key]}" for key in (*keys, "pillow", "protobuf"))


def emulated_gateway(
    command: list[str], env: dict[str, str], cwd: str, timeout: float, sample: tuple[str, bytes],
    reference: Any, probe: Callable[[], dict[str, Any]], step: Steps,
) -> None:  # fmt: skip
    """Start, wait for both processes, check from the host, SIGTERM, exit 0."""
    with gateway(command, env, cwd, timeout) as arm:
        worker = arm.wait_log(WORKER_SERVING, timeout)
        wait_serving(arm.target, timeout, lambda: _gone(arm.proc, arm.log_tail()))
        step.detail(f"under {env['QEMU_CPU']}: {describe_probe(probe())}")
        step(
            f"aarch64 edge-server (PID {arm.proc.pid}, worker 1 PID {worker[2]}) SERVING "
            f"{time.monotonic() - arm.started:.1f} s after start"
        )
        try:
            lines = check_services(arm.target, arm.http_port, *sample, reference)
        except (grpc.RpcError, OSError) as exc:
            raise SmokeFailure(f"check against the emulated gateway failed: {exc}") from exc
        for line in lines:
            step.detail(line)
        step("host-side checks passed")
        code = arm.stop()
        if code != 0:
            raise SmokeFailure(f"emulated gateway exited {code} after SIGTERM:\n{arm.log_tail()}")
        step(f"SIGTERM to PID {arm.proc.pid}: exited 0 (worker included)")


def _gone(proc: subprocess.Popen[str], log: str) -> str | None:
    return None if proc.poll() is None else f"gateway exited {proc.returncode}:\n{log}"


def smoke(cpu: str, start_timeout: float) -> list[str]:
    step = Steps("arm64-smoke")
    cached = rootfs_cached()
    rootfs = build_rootfs()
    step(f"rootfs {'reused from cache' if cached else 'built'}: {rootfs.relative_to(REPO)}")
    with tempfile.TemporaryDirectory(prefix="arm64-smoke-") as tmp, Namespace() as ns:
        workdir = Path(tmp)
        wheel, source, commit = project_wheel(workdir)
        step(f"project wheel {wheel.name} from commit {commit}")
        step.detail(check_wheel(source, wheel))
        origin = resolve_aarch64_wheels(wheel)
        step(f"runtime dependencies resolved as aarch64 cp311 wheels (from the {origin})")
        target = install(rootfs, wheel)
        wheels = installed_wheels(target)
        step(f"pip install --target {SITE}: {len(wheels)} wheels")
        for row in wheels:
            tags = " ".join(row["tags"])
            step.detail(f"{row['name']}=={row['version']}  glibc>={row['min_glibc']}  {tags}")
        neutral = workdir / "empty"  # the working folder: nothing importable in it
        neutral.mkdir()
        env = emulated_env(cpu, rootfs)
        modules = json.dumps(wheel_modules(wheel))
        python = emulated_python(rootfs)
        probe_command = ns.command([python, "-c", PROBE, modules], cwd=str(neutral))
        # The probe runs beside the x86 reference and the emulated start (2 cores).
        pool = ThreadPoolExecutor(1)
        probe_output: Future[str] = pool.submit(run_probe, probe_command, env)
        pool.shutdown(wait=False)

        def probe() -> dict[str, Any]:
            return judge(probe_output.result(), SITE, [REPO, source], allowed=rootfs)

        models, model, image, described = model_and_sample(workdir)
        reference = x86_reference(models, model, image, str(neutral))
        step(f"x86 reference on {described}: class {reference.class_id}")

        script = console_script(rootfs, "edge-server")
        serve = ["--model-root", str(models), "--host", "127.0.0.1", "--grpc-port", "0",
                 "--http-port", "0", "--gateway-id", "arm64-smoke",
                 "--workers", str(WORKERS), "--management-port", "0"]  # fmt: skip
        command = ns.command([python, str(script), *serve], cwd=str(neutral))
        try:
            emulated_gateway(
                command, env, str(neutral), start_timeout, (model, image), reference, probe, step
            )
        except (SmokeFailure, CheckFailure):
            probe()  # a failed import or a leaked source tree explains a failed start best
            raise
        found = probe()
        step.detail(
            f"{len(json.loads(modules))} modules import as installed from {SITE}; "
            f"working folder {found['cwd']}, sys.path {found['sys_path']}"
        )
    return step.lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cpu",
        default=os.environ.get("ARM64_QEMU_CPU", "cortex-a72"),
        help="QEMU_CPU model: cortex-a72 (Raspberry Pi 4) or cortex-a57 (Jetson Nano)",
    )
    parser.add_argument("--start-timeout", type=float, default=240.0, help="seconds to SERVING")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        summary = smoke(args.cpu, args.start_timeout)
    except (SmokeFailure, CheckFailure, ShipFailure, NamespaceError) as exc:
        print(
            f"arm64-smoke: FAILED after {time.monotonic() - started:.1f} s: {exc}", file=sys.stderr
        )
        return 1
    print(f"arm64-smoke: PASSED in {time.monotonic() - started:.1f} s (QEMU_CPU={args.cpu})")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
