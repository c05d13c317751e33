"""Install size of the gateway's runtime dependencies, per distribution and per platform.

The requirements are setup.cfg's install_requires pinned by constraints.txt; x86_64
wheels are downloaded and installed into a temporary directory here, aarch64 figures
come from `make arm64-smoke`'s cache when present (None otherwise).
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.footprint.peak_memory import mib
from benchmarks.models import REPO

ARM64_SITE = REPO / ".cache" / "arm64" / "rootfs" / "opt" / "edge-gateway"
ARM64_WHEELS = REPO / ".cache" / "arm64" / "wheels"


def runtime_requirements() -> list[str]:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].strip().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def canonical(name: str) -> str:
    """A distribution name as PEP 503 normalizes it, so wheels and RECORDs match."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_sizes(site: Path) -> dict[str, dict[str, Any]]:
    """Bytes on disk per distribution, from the files its RECORD lists."""
    sizes: dict[str, dict[str, Any]] = {}
    for record in site.glob("*.dist-info/RECORD"):
        name, version = record.parent.name.removesuffix(".dist-info").rsplit("-", 1)
        total = 0
        for line in record.read_text(encoding="utf-8").splitlines():
            path = site / line.split(",", 1)[0]
            if path.is_file() and ".." not in Path(line.split(",", 1)[0]).parts:
                total += path.stat().st_size
        sizes[canonical(name)] = {"version": version, "installed": total}
    return sizes


def wheel_sizes(folder: Path) -> dict[str, int]:
    return {canonical(w.name.split("-", 1)[0]): w.stat().st_size for w in folder.glob("*.whl")}


def install_size() -> dict[str, Any]:
    """One row per installed distribution, largest first, and the totals."""
    requirements = runtime_requirements()
    direct = {canonical(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    pins = ["--only-binary=:all:", "-c", str(REPO / "constraints.txt")]
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        wheels, site = Path(tmp) / "wheels", Path(tmp) / "site"
        download = [*pip, "download", *pins, "-d", str(wheels), *requirements]
        subprocess.run(download, check=True, capture_output=True)
        local = ["--no-index", "--find-links", str(wheels), "--target", str(site)]
        subprocess.run(
            [*pip, "install", *local, *pins, *requirements], check=True, capture_output=True
        )
        x86 = installed_sizes(site)
        x86_wheels = wheel_sizes(wheels)
    arm = installed_sizes(ARM64_SITE) if ARM64_SITE.is_dir() else {}
    arm_wheels = wheel_sizes(ARM64_WHEELS) if ARM64_WHEELS.is_dir() else {}
    rows = []
    for name, info in sorted(x86.items(), key=lambda item: -item[1]["installed"]):
        rows.append(
            {
                "package": name,
                "version": info["version"],
                "required_by": "gateway" if name in direct else "transitive",
                "x86_64_wheel_mib": mib(x86_wheels.get(name, 0)),
                "x86_64_installed_mib": mib(info["installed"]),
                "aarch64_wheel_mib": mib(arm_wheels[name]) if name in arm_wheels else None,
                "aarch64_installed_mib": mib(arm[name]["installed"]) if name in arm else None,
            }
        )
    return {
        "packages": rows,
        "x86_64_installed_total_mib": mib(sum(i["installed"] for i in x86.values())),
        "aarch64_installed_total_mib": mib(sum(v["installed"] for k, v in arm.items() if k in x86))
        if arm
        else None,
    }
