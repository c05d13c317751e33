"""What the installed-wheel stage shares between its steps: the temp folders (outside the
tree), the virtualenvs, the neutral working folder and what earlier steps produced."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.paths import REPO

HERE = Path(__file__).resolve().parent
# What the scenario reads, copied from the repo so nothing is read from the tree.
EXAMPLES = ("models", "images", "bundles", "keys", "data")
MODEL_MODULE = "mymodel.py"  # the torch model `model-tools export mymodel:build` imports
GATEWAY_ID = "wheel-e2e"


def clean_env() -> dict[str, str]:
    """The caller's environment without Python, virtualenv or gateway settings: a
    PYTHONPATH or an EDGE_TARGET left in a developer's shell must not help a step pass."""
    dropped = ("PYTHON", "VIRTUAL_ENV", "EDGE_", "CONDA_")
    return {key: value for key, value in os.environ.items() if not key.startswith(dropped)}


@dataclass(frozen=True)
class Venv:
    """One fresh virtualenv holding the wheel with one extras set ("" for none)."""

    name: str
    extra: str
    path: Path

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def script(self, name: str) -> str:
        """An installed console script, by absolute path: nothing is found on PATH."""
        return str(self.path / "bin" / name)

    @property
    def label(self) -> str:
        return f"[{self.extra}]"


@dataclass
class Workspace:
    """Paths and results of earlier steps; steps fill the optional fields in."""

    root: Path  # the temp folder: build/, venv-*/, neutral/
    neutral: Path  # the working folder of every command the scenario runs
    token: str
    commit: str = ""
    source: Path | None = None  # the committed tree (git archive HEAD)
    sdist: Path | None = None
    wheel: Path | None = None
    version: str = ""
    venvs: dict[str, Venv] = field(default_factory=dict)
    digits_2: Path | None = None  # bundle of digits version 2, shipped or a stand-in
    new_key: Path | None = None  # public key made by `model-tools keygen`
    new_bundle: Path | None = None  # the bundle packaged by the [tools] steps
    new_model: tuple[str, str] = ("", "")  # its (name, version)
    gateway: Any = None  # tests.arm64.gateway_probe.Gateway while the gateway runs
    rollout_id: str = ""

    @property
    def constraints(self) -> Path:
        assert self.source is not None
        return self.source / "constraints.txt"

    @property
    def target(self) -> str:
        return str(self.gateway.target)

    def client(self, *args: str) -> list[str]:
        """`edge-client --target <the running gateway> ARGS` from the base virtualenv."""
        return [self.venvs["base"].script("edge-client"), "--target", self.target, *args]

    def managed(self, *args: str) -> list[str]:
        """An edge-client management command: `--token` as in the README."""
        return self.client("--token", self.token, *args)


def prepare(root: Path) -> Workspace:
    """The neutral folder with the torch model module and a management token; it lies
    outside the tree, so the repo cannot be on sys.path."""
    if root.resolve().is_relative_to(REPO):
        raise RuntimeError(f"temp folder {root} lies inside the tree {REPO}")
    neutral = root / "neutral"
    neutral.mkdir()
    shutil.copyfile(HERE / MODEL_MODULE, neutral / MODEL_MODULE)
    token = secrets.token_hex(16)
    (neutral / "token").write_text(token + "\n", encoding="utf-8")
    return Workspace(root=root, neutral=neutral, token=token)


def copy_examples(ws: Workspace) -> str:
    """examples/{models,images,bundles,keys,data} of the committed tree into the neutral
    folder: the scenario reads only these copies."""
    assert ws.source is not None
    for name in EXAMPLES:
        shutil.copytree(ws.source / "examples" / name, ws.neutral / name)
    bundles = sorted(path.name for path in (ws.neutral / "bundles").iterdir())
    return f"examples/{{{','.join(EXAMPLES)}}}; bundles: {', '.join(bundles)}"
