"""The product as it ships: the sdist built from the committed tree, the wheel built from
that sdist (so the sdist must be complete), and the wheel's files compared with the
packages of the tree (so setup.cfg cannot forget one)."""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

from tests.arm64.aarch64_env import PROJECT, pip, run
from tests.installed.commands import expect
from tests.installed.workspace import REPO, Workspace

# Top-level packages of the tree that are not part of the product (tests/ is a package so
# that its drivers run with `python -m`; setup.cfg ships neither).
NOT_SHIPPED = frozenset({"benchmarks", "tests"})
# The product's import names; none may be missing from the tree or the wheel.
SHIPPED = ("cloud_orchestrator", "edge_client", "edge_contracts", "edge_server", "model_tools")
# Generic names the generated protobuf code once claimed at top level.
FORBIDDEN_TOP_LEVEL = ("edge", "inference")
MODULE_PATTERNS = ("*.py", "*.pyi", "py.typed")

# setuptools' PEP 517 build_sdist hook, run in the source folder with this interpreter's
# setuptools (no isolated build environment, nothing downloaded).
SDIST_HOOK = (
    "import os, sys; os.chdir(sys.argv[1]); from setuptools import build_meta; "
    "print(build_meta.build_sdist(sys.argv[2]))"
)


def unpack(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def committed_tree(ws: Workspace) -> str:
    """HEAD via `git archive`: untracked files and uncommitted edits cannot leak in."""
    archive = ws.root / "head.tar"
    run(
        ["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), "HEAD"],
        "git archive",
    )
    ws.source = ws.root / "source"
    unpack(archive, ws.source)
    archive.unlink()
    ws.commit = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], "git").strip()
    return f"commit {ws.commit}: {sum(1 for _ in ws.source.rglob('*'))} files and folders"


def build_sdist(ws: Workspace) -> str:
    assert ws.source is not None
    out = ws.root / "sdist"
    name = run([sys.executable, "-c", SDIST_HOOK, str(ws.source), str(out)], "build_sdist")
    ws.sdist = out / name.strip().splitlines()[-1]
    expect(ws.sdist.is_file(), f"build_sdist named {ws.sdist}, which does not exist")
    return f"{ws.sdist.name} ({ws.sdist.stat().st_size // 1024} KiB)"


def build_wheel(ws: Workspace) -> str:
    """`pip wheel --no-deps` from the unpacked sdist, not from the tree."""
    assert ws.sdist is not None
    unpacked = ws.root / "sdist-unpacked"
    unpack(ws.sdist, unpacked)
    (root,) = unpacked.iterdir()
    out = ws.root / "wheel"
    command = pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(root))
    run(command, "pip wheel (from the sdist)")
    wheels = sorted(out.glob(f"{PROJECT}-*.whl"))
    expect(len(wheels) == 1, f"pip wheel produced {wheels}, expected one {PROJECT} wheel")
    ws.wheel = wheels[0]
    ws.version = ws.wheel.name.split("-")[1]
    return f"{ws.wheel.name} ({ws.wheel.stat().st_size // 1024} KiB)"


def tree_packages(source: Path) -> list[str]:
    """Top-level packages of the tree (folders with an __init__.py), less NOT_SHIPPED."""
    found = {path.parent.name for path in source.glob("*/__init__.py")}
    return sorted(found - NOT_SHIPPED)


def module_files(source: Path, packages: list[str]) -> set[str]:
    """Every module, stub and py.typed marker of those packages, as wheel paths."""
    files: set[str] = set()
    for package in packages:
        for pattern in MODULE_PATTERNS:
            matches = (source / package).rglob(pattern)
            files |= {path.relative_to(source).as_posix() for path in matches}
    return {name for name in files if "/__pycache__/" not in name}


def check_wheel(ws: Workspace) -> str:
    assert ws.source is not None and ws.wheel is not None
    packages = tree_packages(ws.source)
    lost = sorted(set(SHIPPED) - set(packages))
    expect(not lost, f"the tree has no package {lost} (found {packages})")
    with zipfile.ZipFile(ws.wheel) as archive:
        names = set(archive.namelist())
    expected = module_files(ws.source, packages)
    missing = sorted(expected - names)
    expect(not missing, f"{len(missing)} files of the tree are not in the wheel: {missing[:20]}")
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    top_names = {name.removesuffix(".py") for name in top}
    expect(top_names == set(packages), f"wheel top level {sorted(top)}, tree {packages}")
    clash = sorted(top_names & set(FORBIDDEN_TOP_LEVEL))
    expect(not clash, f"the wheel installs {clash} at top level")
    subpackages = {name.rsplit("/", 1)[0] for name in expected if name.endswith("/__init__.py")}
    return (
        f"all {len(expected)} modules/stubs of {len(packages)} packages "
        f"({len(subpackages)} with subpackages) are in the wheel; top level: {', '.join(packages)}"
    )
