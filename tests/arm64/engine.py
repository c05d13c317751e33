"""podman and buildah (Debian bookworm's) as this machine can run them, for `make arm64-image`.

No Docker engine, no container registry (the python:3.11-slim-bookworm base cannot be
pulled) and no host binfmt_misc. What works, found by trying (docs/arm64.md lists every
attempt and its error):

- both run as root inside a userns.Namespace, whose private binfmt_misc runs the image's
  aarch64 programs through qemu-aarch64-static; storage is overlay in .cache/arm64/containers
  (vfs works too, at 2-3 times the build time);
- RUN steps (`buildah bud --isolation oci`) and the container (`podman run`) both run in
  runc (crun 1.8 refuses the machine's mixed cgroup v1/v2 layout) with RUNTIME options:
  host networking (the gateway is reached on 127.0.0.1, RUN steps reach PyPI), /sys
  bind-mounted (sysfs cannot be mounted from a user namespace that does not own the
  network namespace), ulimits at or below the host's (no CAP_SYS_RESOURCE to raise them),
  and an ARM /proc/cpuinfo bound over the x86 one (ONNX Runtime's CPU detection crashes
  on the x86 file under qemu-user; `--isolation chroot` cannot bind over it);
- RUN steps see the host's CA bundle over the image's (this machine's route to PyPI
  presents a certificate that only the host's bundle trusts); no layer keeps it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.arm64.aarch64_env import CACHE, run
from tests.arm64.userns import Namespace

STORE = CACHE / "containers"
STORAGE = [
    f"--root={STORE / 'storage'}", f"--runroot={STORE / 'run'}", "--storage-driver=overlay",
]  # fmt: skip
PODMAN = [
    "podman", *STORAGE, f"--tmpdir={STORE / 'tmp'}", "--runtime=runc",
    "--cgroup-manager=cgroupfs", "--events-backend=file",
]  # fmt: skip
STANDIN = "localhost/edge-standin/python"  # + ":3.11-slim-bookworm-<rootfs key>"
# Left out of the stand-in: debootstrap's work folder, the smoke's install, our stamp and
# the synthetic cpuinfo (a container gets its own /proc).
NOT_IN_BASE = ["./debootstrap", "./opt/edge-gateway", "./opt/edge-gateway.tmp",
               "./.edge-rootfs-complete", "./proc/cpuinfo"]  # fmt: skip
# The python:3.11-slim-bookworm image config that the Dockerfile can see.
BASE_CONFIG = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def runtime_options(cpuinfo: Path) -> list[str]:
    """What a RUN step and the container need here (the module's docstring says why)."""
    limits = [f"--ulimit={name}={min(os.sysconf(key), 4096)}" for name, key in
              (("nofile", "SC_OPEN_MAX"), ("nproc", "SC_CHILD_MAX"))]  # fmt: skip
    return [
        "--network=host", *limits, "--volume=/sys:/sys:rbind,ro",
        f"--volume={cpuinfo}:/proc/cpuinfo:ro",
    ]  # fmt: skip


class EngineFailure(Exception):
    """An engine command failed; the message holds its output's tail."""


def install_tools() -> None:
    """podman, buildah and runc from Debian, when missing (root: the targets need it)."""
    missing = [tool for tool in ("podman", "buildah", "runc") if not shutil.which(tool)]
    if missing:
        run(["apt-get", "update", "-qq"], "apt-get update", timeout=600)
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        run(install, f"apt-get install {' '.join(missing)}", timeout=900)


class Engine:
    """podman/buildah commands inside one namespace (containers are reachable only there)."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        for folder in ("storage", "run", "tmp"):
            (STORE / folder).mkdir(parents=True, exist_ok=True)

    def call(self, argv: list[str], what: str, timeout: float = 300) -> str:
        try:
            result = self.ns.run(argv, timeout)
        except subprocess.TimeoutExpired as exc:
            raise EngineFailure(f"{what}: no answer in {timeout:.0f} s\n{exc.output}") from None
        if result.returncode != 0:
            raise EngineFailure(f"{what} exited {result.returncode}:\n{result.stdout[-4000:]}")
        return result.stdout

    def podman(self, *args: str, timeout: float = 300) -> str:
        return self.call([*PODMAN, *args], f"podman {args[0]}", timeout)

    def attempt(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A podman command whose failure is an answer (healthcheck run, image exists)."""
        return self.ns.run([*PODMAN, *args], timeout)

    def inspect(self, *args: str) -> Any:
        return json.loads(self.podman(*args))[0]

    def standin_base(self, rootfs: Path, workdir: Path) -> tuple[str, bool]:
        """(tag, imported now): the bookworm arm64 userland as an image, once per rootfs."""
        stamp = rootfs / ".edge-rootfs-complete"
        key = hashlib.sha256(f"{stamp.read_text()}{stamp.stat().st_mtime_ns}".encode())
        tag = f"{STANDIN}:3.11-slim-bookworm-{key.hexdigest()[:12]}"
        if self.attempt("image", "exists", tag).returncode == 0:
            return tag, False
        # A new userland: images and build cache of the old one are garbage.
        self.podman("rmi", "--all", "--force")
        archive = workdir / "standin.tar"
        excludes = [f"--exclude={path}" for path in NOT_IN_BASE]
        tar = ["tar", "--numeric-owner", *excludes, "-C", str(rootfs), "-cf", str(archive), "."]
        run(tar, "tar of the rootfs")
        changes = [f"--change={change}" for change in BASE_CONFIG]
        self.podman("import", "--arch=arm64", "--os=linux", *changes, str(archive), tag)
        archive.unlink()
        return tag, True

    def build(self, context: Path, dockerfile: str, base: str, tag: str, cpuinfo: Path) -> str:
        """buildah bud of the Dockerfile in `context`, with the stand-in base; --format
        docker keeps HEALTHCHECK (the OCI image format has no field for it)."""
        options = runtime_options(cpuinfo)
        if HOST_CA_BUNDLE.is_file():
            options.append(f"--volume={HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro")
        argv = [
            "buildah", *STORAGE, "bud", "--format=docker", "--layers", "--isolation=oci",
            "--runtime=runc", "--cgroup-manager=cgroupfs", "--pull=never", *options,
            f"--build-arg=PYTHON_IMAGE={base}", f"--file={context / dockerfile}",
            f"--tag={tag}", str(context),
        ]  # fmt: skip
        return self.call(argv, f"buildah bud -f {dockerfile}", timeout=1800)
