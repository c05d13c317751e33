"""Fresh virtualenvs outside the tree, one per extras set, each installed from the wheel
with the pinned constraints as a user would; and what each one holds."""

from __future__ import annotations

import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tests.arm64.aarch64_env import run
from tests.installed.commands import expect, ok, ok_json
from tests.installed.wheel_build import FORBIDDEN_TOP_LEVEL, SHIPPED
from tests.installed.workspace import REPO, Venv, Workspace, clean_env

EXTRAS = {"base": "", "tools": "tools", "cloud": "cloud"}
# Installed first and alone: the pinned CPU wheel lies on the machine's disk, and any other
# torch version would pull a multi-GB CUDA build (the Makefile's .dev target does the same).
TORCH = "torch==2.13.0"
INSTALL_TIMEOUT = 900.0

# Where each import name would come from, run from the neutral folder (spec only: nothing
# is imported, so the base venv answers for model_tools without torch).
SPEC_PROBE = """
import importlib.util, json, sys
found = {}
for name in sys.argv[1:]:
    spec = importlib.util.find_spec(name)
    found[name] = None if spec is None else (spec.origin or str(spec.submodule_search_locations))
print(json.dumps(found))
"""
NEUTRAL_PROBE = "import sys, edge_server; print(edge_server.__file__); print(sys.path)"


def create(root: Path, name: str, wheel: Path, constraints: Path) -> tuple[Venv, float]:
    """The virtualenv and the seconds it took (they are built side by side)."""
    started = time.monotonic()
    venv = Venv(name, EXTRAS[name], root / f"venv-{name}")
    env = clean_env()
    run([sys.executable, "-m", "venv", str(venv.path)], f"python -m venv {venv.path}", env)
    # --no-compile: byte-compiling torch's tree costs ~20 s of CPU on 2 cores and proves
    # nothing (pip only warns on a file that does not compile; imports compile what runs).
    install = [venv.python, "-m", "pip", "install", "-q", "--no-compile", "-c", str(constraints)]
    if venv.extra == "tools":
        run([*install, TORCH], f"pip install {TORCH} into {venv.label}", env, INSTALL_TIMEOUT)
    requirement = f"{wheel}[{venv.extra}]" if venv.extra else str(wheel)
    run([*install, requirement], f"pip install {requirement}", env, INSTALL_TIMEOUT)
    return venv, time.monotonic() - started


def start_all(ws: Workspace) -> dict[str, Future[tuple[Venv, float]]]:
    """All three at once: they are mostly pip's downloads, unpacking and disk writes."""
    assert ws.wheel is not None
    pool = ThreadPoolExecutor(len(EXTRAS), thread_name_prefix="venv")
    futures = {
        name: pool.submit(create, ws.root, name, ws.wheel, ws.constraints) for name in EXTRAS
    }
    pool.shutdown(wait=False)
    return futures


def collect(ws: Workspace, name: str, future: Future[tuple[Venv, float]]) -> str:
    venv, seconds = future.result(timeout=2 * INSTALL_TIMEOUT)
    ws.venvs[name] = venv
    size = sum(path.stat().st_size for path in venv.path.rglob("*") if path.is_file())
    wheel = ws.wheel.name if ws.wheel else ""
    built = f"{size >> 20} MiB, built in {seconds:.0f} s beside the others"
    return f"{venv.path.name}: pip install '{wheel}{venv.label}' ({built})"


def check_layout(venv: Venv) -> str:
    """The five packages come from this venv's site-packages; no `edge` or `inference`."""
    found = ok_json([venv.python, "-c", SPEC_PROBE, *SHIPPED, *FORBIDDEN_TOP_LEVEL])
    outside = {
        name: found[name] for name in SHIPPED if not str(found[name]).startswith(str(venv.path))
    }
    expect(not outside, f"{venv.label} imports these from outside the venv: {outside}")
    clash = {name: found[name] for name in FORBIDDEN_TOP_LEVEL if found[name] is not None}
    expect(not clash, f"{venv.label} has top-level {clash}")
    return f"{', '.join(SHIPPED)} from {venv.path.name}/.../site-packages; no edge, no inference"


def check_neutral(ws: Workspace) -> str:
    """From the neutral folder, no PYTHONPATH: the tree is nowhere on sys.path."""
    venv = ws.venvs["base"]
    out = ok([venv.python, "-c", NEUTRAL_PROBE])
    expect(str(REPO) not in out, f"the tree {REPO} shows up from the neutral folder:\n{out}")
    origin = out.splitlines()[0]
    expect(origin.startswith(str(venv.path)), f"edge_server imported from {origin}")
    return f"edge_server from {Path(origin).relative_to(venv.path.parent)}; {REPO} not on sys.path"
