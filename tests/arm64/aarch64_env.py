"""The emulated aarch64 environment of `make arm64-smoke`: rootfs, wheels, install.

`build_rootfs.sh` provides a Debian bookworm arm64 userland (.cache/arm64/rootfs);
the project wheel (built from `git archive HEAD`: the committed tree, nothing untracked)
and the aarch64 wheels of its runtime dependencies (cached in .cache/arm64/wheels) are
installed into it with `pip install --target`. ROOTFS/usr/bin/python3 runs in a
userns.Namespace (its private binfmt_misc hands aarch64 programs to qemu) with
QEMU_LD_PREFIX=ROOTFS, so a process the gateway starts (a --workers replica) is
emulated with the same userland.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

CACHE = REPO / ".cache" / "arm64"
WHEELHOUSE = CACHE / "wheels"
PYTHON_VERSION = "3.11"  # Debian bookworm's python3, and the Dockerfile.arm64 base
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64")
SITE = "/opt/edge-gateway"  # inside the rootfs; qemu -L resolves it there
PROJECT = "edge_inference_gateway"


class SmokeFailure(Exception):
    """A step failed; the message says which and why."""


class Steps:
    """Timed summary lines, echoed to stderr as they happen."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []
        self.clock = time.monotonic()

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        self.lines.append(f"{now - self.clock:6.1f} s  {text}")
        print(f"{self.prefix}: {text} ({now - self.clock:.1f} s)", file=sys.stderr, flush=True)
        self.clock = now

    def detail(self, text: str) -> None:
        self.lines.append(f"          {text}")


def run(
    command: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 900
) -> str:
    """Run to completion; SmokeFailure with the output's tail on a non-zero exit."""
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise SmokeFailure(
            f"{what} did not finish in {timeout:.0f} s: {' '.join(command)}"
        ) from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        # pip's notes about this machine's missing local index folders are noise here.
        tail = "\n".join(line for line in output if "is ignored: it is neither" not in line)
        code = str(result.returncode)
        if result.returncode < 0:
            code += f", {signal.Signals(-result.returncode).name}"
        raise SmokeFailure(f"{what} failed (exit {code}): {' '.join(command)}\n{tail[-3000:]}")
    return result.stdout


def pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]


def platform_args() -> list[str]:
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    return args


def build_rootfs() -> Path:
    script = REPO / "tests" / "arm64" / "build_rootfs.sh"
    out = run(["bash", str(script), str(CACHE)], "tests/arm64/build_rootfs.sh")
    return Path(out.strip().splitlines()[-1])


def rootfs_cached() -> bool:
    return (CACHE / "rootfs" / ".edge-rootfs-complete").is_file()


def committed_tree(dest: Path) -> str:
    """`git archive HEAD` unpacked into `dest`; returns the commit and any local changes.

    What CI's clean clone has: untracked files, build/ leftovers and uncommitted edits
    cannot leak into what is built from it.
    """
    dest.mkdir(parents=True)
    commit = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], "git rev-parse")
    git_archive = ["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"]
    archive = subprocess.run(git_archive, capture_output=True, check=False)
    if archive.returncode != 0:
        raise SmokeFailure(f"git archive HEAD failed: {archive.stderr.decode(errors='replace')}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    changed = run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"], "git")
    note = f" ({len(changed.splitlines())} uncommitted changes left out)" if changed else ""
    return commit.strip() + note


def project_wheel(workdir: Path) -> tuple[Path, Path, str]:
    """(wheel, its source tree, commit): built from the committed tree, never in place."""
    source = workdir / "source"
    commit = committed_tree(source)
    # The dev venv holds the build backend (setuptools>=69): no network, no isolated env.
    run(
        pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(workdir), str(source)),
        "pip wheel",
    )
    wheels = sorted(workdir.glob(f"{PROJECT}-*.whl"))
    if len(wheels) != 1:
        raise SmokeFailure(f"pip wheel produced {wheels}, expected one {PROJECT} wheel")
    return wheels[0], source, commit


def resolve_aarch64_wheels(project: Path) -> str:
    """Download the dependency closure as aarch64 wheels; offline from the cache when it can."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    common = [*platform_args(), "-c", str(REPO / "constraints.txt"), "-d", str(WHEELHOUSE)]
    offline = pip("download", "-q", "--no-index", "--find-links", str(WHEELHOUSE), *common)
    try:
        run([*offline, str(project)], "pip download (offline, from the wheel cache)")
        source = "wheel cache"
    except SmokeFailure:
        run([*pip("download", "-q", *common), str(project)], "pip download (aarch64 wheels)")
        source = "package index"
    for stale in WHEELHOUSE.glob(f"{PROJECT}-*.whl"):  # never install a cached project wheel
        stale.unlink()
    return source


def install(rootfs: Path, project: Path) -> Path:
    """A fresh ROOTFS/opt/edge-gateway with the project and its aarch64 dependencies."""
    target = rootfs / SITE.lstrip("/")
    fresh = target.with_name(target.name + ".tmp")
    shutil.rmtree(fresh, ignore_errors=True)
    run(
        pip(
            "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE), *platform_args(),
            "-c", str(REPO / "constraints.txt"), "--target", str(fresh), str(project),
        ),
        "pip install --target (aarch64)",
    )  # fmt: skip
    shutil.rmtree(target, ignore_errors=True)
    fresh.rename(target)
    return target


def installed_wheels(target: Path) -> list[dict[str, Any]]:
    """Name, version, tags and minimum glibc of every installed wheel (from dist-info/WHEEL)."""
    rows = []
    for wheel_file in sorted(target.glob("*.dist-info/WHEEL")):
        name, version = wheel_file.parent.name.removesuffix(".dist-info").rsplit("-", 1)
        tags = [
            line.split(":", 1)[1].strip()
            for line in wheel_file.read_text(encoding="utf-8").splitlines()
            if line.startswith("Tag:")
        ]
        known = [g for g in (minimum_glibc(tag.rsplit("-", 1)[1]) for tag in tags) if g]
        rows.append(
            {
                "name": name,
                "version": version,
                "tags": tags,
                "min_glibc": ".".join(map(str, min(known))) if known else "any",
            }
        )
    return rows


def minimum_glibc(platform: str) -> tuple[int, int] | None:
    """manylinux2014 is glibc 2.17; manylinux_X_Y is X.Y; anything else says nothing."""
    if platform == "manylinux2014_aarch64":
        return (2, 17)
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_aarch64", platform)
    return (int(match[1]), int(match[2])) if match else None


def emulated_python(rootfs: Path) -> str:
    """Executed through the namespace's binfmt_misc handler (see userns.py)."""
    return str(rootfs / "usr" / "bin" / "python3")


def console_script(rootfs: Path, name: str) -> Path:
    """The wrapper pip generated from the wheel's entry point (its shebang is the host's)."""
    script = rootfs / SITE.lstrip("/") / "bin" / name
    if not script.is_file():
        raise SmokeFailure(f"the wheel installed no console script {name} in {SITE}/bin")
    return script


def emulated_env(cpu: str, rootfs: Path) -> dict[str, str]:
    """The host environment without Python settings, plus qemu's userland and our site dir.

    QEMU_LD_PREFIX is qemu's -L: inherited by every emulated process, also those started
    by exec through the binfmt_misc handler, which passes no options.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(QEMU_CPU=cpu, QEMU_LD_PREFIX=str(rootfs), PYTHONPATH=SITE, PYTHONUNBUFFERED="1")
    return env
