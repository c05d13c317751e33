"""Is what we ship what we test? The project wheel against the committed tree, and its imports.

Host side: every package of the committed tree under the names setup.cfg ships (and the
console scripts' modules) must be in the wheel, so a forgotten subpackage (the missing
edge_server.workers once) fails here by name. Emulated side: PROBE, run from an empty
folder with only the installed site on PYTHONPATH, imports every module the gateway and
the client need without extras, and every package, and reports where each project module
came from, sys.path and the platform; `judge` fails if any of it comes from a source tree.
"""

from __future__ import annotations

import configparser
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

# Importable with install_requires alone: the console scripts edge-server and edge-client.
# model_tools and cloud_orchestrator need their extras (torch, sqlalchemy): packages only.
NO_EXTRAS = ("edge_server", "edge_contracts", "edge_client")


class ShipFailure(Exception):
    """The wheel or its installed copy is not what the committed tree says."""


def shipped_roots(source: Path) -> set[str]:
    """Top-level packages setup.cfg ships: packages.find includes and console-script modules."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(source / "setup.cfg", encoding="utf-8")
    includes = config.get("options.packages.find", "include", fallback="").split()
    roots = {name.split(".")[0] for name in includes}
    scripts = config.get("options.entry_points", "console_scripts", fallback="").splitlines()
    roots |= {line.split("=", 1)[1].strip().split(".")[0] for line in scripts if "=" in line}
    return roots


def tree_packages(source: Path, roots: set[str]) -> set[str]:
    """Dotted names of every folder with an __init__.py under `roots` in the tree."""
    return {
        ".".join(init.parent.relative_to(source).parts)
        for root in roots
        for init in (source / root).rglob("__init__.py")
    }


def wheel_packages(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = [PurePosixPath(name) for name in archive.namelist()]
    return {".".join(name.parent.parts) for name in names if name.name == "__init__.py"}


def wheel_modules(wheel: Path) -> list[str]:
    """What PROBE imports: every module under NO_EXTRAS, every package elsewhere."""
    with zipfile.ZipFile(wheel) as archive:
        names = [PurePosixPath(name) for name in archive.namelist() if name.endswith(".py")]
    modules = set()
    for name in names:
        parts = name.with_suffix("").parts
        if name.name == "__init__.py":
            modules.add(".".join(parts[:-1]))
        elif parts[0] in NO_EXTRAS and name.name != "__main__.py":
            modules.add(".".join(parts))
    return sorted(modules)


def check_wheel(source: Path, wheel: Path) -> str:
    """ShipFailure naming the tree's packages the wheel lacks; else a summary line."""
    roots = shipped_roots(source)
    expected = tree_packages(source, roots)
    shipped = wheel_packages(wheel)
    missing = sorted(expected - shipped)
    if missing:
        raise ShipFailure(
            f"{wheel.name} lacks packages of the committed tree: {', '.join(missing)} "
            "(setup.cfg [options] packages)"
        )
    return f"wheel ships all {len(expected)} packages of {', '.join(sorted(roots))}"


# Runs under emulation with argv[1] = JSON list of modules; prints one JSON object.
PROBE = """
import importlib, json, os, platform, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
import edge_server, grpc, numpy, onnxruntime, PIL, google.protobuf as pb
roots = {name.split(".")[0] for name in json.loads(sys.argv[1])}
files = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())
         if name.split(".")[0] in roots}
print(json.dumps({
    "machine": platform.machine(), "python": platform.python_version(),
    "glibc": platform.libc_ver()[1], "onnxruntime": onnxruntime.__version__,
    "providers": onnxruntime.get_available_providers(), "grpcio": grpc.__version__,
    "numpy": numpy.__version__, "pillow": PIL.__version__, "protobuf": pb.__version__,
    "cwd": os.getcwd(), "sys_path": sys.path, "edge_server": edge_server.__file__,
    "files": files, "failed": failed,
}))
"""


def judge(output: str, site: str, forbidden: list[Path], allowed: Path) -> dict[str, Any]:
    """The probe's JSON, or ShipFailure: a failed import, code from outside `site`, or a
    sys.path entry inside a `forbidden` tree (the checkout, the wheel's source copy) that
    is not inside `allowed` (the emulated userland, which lives in the checkout's .cache).
    """
    probe: dict[str, Any] = json.loads(output)
    if probe["failed"]:
        detail = "\n".join(f"{name}:\n{error}" for name, error in probe["failed"].items())
        raise ShipFailure(f"{len(probe['failed'])} modules do not import as installed:\n{detail}")
    outside = {
        name: path
        for name, path in probe["files"].items()
        if not (path or "").startswith(site.rstrip("/") + "/")
    }
    if outside or not probe["edge_server"].startswith(site.rstrip("/") + "/"):
        raise ShipFailure(f"project modules imported from outside {site}: {outside}")
    entries = [probe["cwd"] if entry == "" else entry for entry in probe["sys_path"]]
    leaks = [
        entry
        for entry in entries
        for root in forbidden
        if Path(entry).resolve().is_relative_to(root.resolve())
        and not Path(entry).resolve().is_relative_to(allowed.resolve())
    ]
    if leaks:
        raise ShipFailure(f"sys.path holds a source tree {leaks}: {probe['sys_path']}")
    return probe
