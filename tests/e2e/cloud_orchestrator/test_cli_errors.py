"""`edge-orchestrator` user mistakes: each one is a single `edge-orchestrator: error: ...`
line on stderr and a non-zero exit, never a traceback. The real CLI in a subprocess
against a real SQLite registry, a real closed PostgreSQL port and a real process holding
the port `serve` is asked to use; `--version` and `--help` without the cloud extra."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bundles import make_keys
from tests.support.certs import Pki, make_pki
from tests.support.orchestrator import (  # noqa: F401
    ORCHESTRATOR,
    OrchestratorProcess,
    Publisher,
    cli,
    free_port,
    publisher,
)

EXTRA = "pip install 'edge-inference-gateway[cloud]'"


@dataclass(frozen=True)
class Workspace:
    db: str
    artifacts: Path
    folder: Path
    bundle: Path  # gray 3, signed by the publisher's key, not published
    key: Path  # the publisher's public key
    pki: Pki


@pytest.fixture
def ws(publisher: Publisher, tmp_path: Path) -> Workspace:
    """A registry holding gray 2, and a few files the mistakes below point at."""
    db = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    artifacts = tmp_path / "artifacts"
    keys = str(publisher.public_key)
    published = publisher.gray_bundle("2", golden=False)
    cli("publish", str(published), "--trusted-keys", keys, db=db, artifacts=artifacts)
    make_keys(tmp_path / "stranger", "stranger")
    (tmp_path / "no-keys").mkdir()
    (tmp_path / "empty.token").write_text("\n")
    (tmp_path / "a-file").write_text("not a folder")
    bundle = publisher.gray_bundle("3", golden=False)
    return Workspace(db, artifacts, tmp_path, bundle, Path(keys), make_pki(tmp_path / "pki"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_ORCHESTRATOR")}
    return subprocess.run(
        [ORCHESTRATOR, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ | (env or {}),
    )


def the_error(result: subprocess.CompletedProcess[str], prog: str = "edge-orchestrator") -> str:
    """The one error line, without its `PROG: error: ` prefix."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"{prog}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


Case = Callable[[Workspace], list[str]]


def on(ws: Workspace, *args: str) -> list[str]:
    return [*args, "--db", ws.db, "--artifacts", str(ws.artifacts)]


MISTAKES: dict[str, tuple[Case, int, str]] = {
    "deploy an unknown model": (
        lambda ws: on(ws, "deploy", "nosuch", "1", "--gateways", "all"),
        1,
        "no model named 'nosuch' in the registry (`edge-orchestrator models` lists them)",
    ),
    "deploy an unknown version": (
        lambda ws: on(ws, "deploy", "gray", "7", "--gateways", "all"),
        1,
        "model 'gray' has no version '7' in the registry (published: 2)",
    ),
    "deploy to no gateway": (
        lambda ws: on(ws, "deploy", "gray", "2", "--gateways", "all"),
        1,
        "selector 'all' matches no registered gateway "
        "(add one with `edge-orchestrator gateways register ID --address HOST:PORT`)",
    ),
    "publish a missing bundle file": (
        lambda ws: on(
            ws, "publish", str(ws.folder / "nope.edgebundle"), "--trusted-keys", str(ws.key)
        ),
        1,
        "bundle file {folder}/nope.edgebundle does not exist",
    ),
    "publish a bundle signed by an untrusted key": (
        lambda ws: on(ws, "publish", str(ws.bundle), "--trusted-keys", str(ws.folder / "stranger")),
        1,
        "which is not among the trusted keys",
    ),
    "publish without --trusted-keys": (
        lambda ws: on(ws, "publish", str(ws.bundle)),
        1,
        "no trusted public keys: pass --trusted-keys KEY.pub or a folder of *.pub "
        "(or set EDGE_ORCHESTRATOR_TRUSTED_KEYS)",
    ),
    "publish with a missing key file": (
        lambda ws: on(ws, "publish", str(ws.bundle), "--trusted-keys", "/nonexistent.pub"),
        1,
        "--trusted-keys: key file not found: /nonexistent.pub",
    ),
    "publish with a folder holding no key": (
        lambda ws: on(ws, "publish", str(ws.bundle), "--trusted-keys", str(ws.folder / "no-keys")),
        1,
        "--trusted-keys: {folder}/no-keys holds no *.pub public key",
    ),
    "register with a missing --token-file": (
        lambda ws: on(ws, "gateways", "register", "gw-1", "--token-file", "/nonexistent.token"),
        1,
        "--token-file /nonexistent.token: no such file",
    ),
    "register with a folder as --token-file": (
        lambda ws: on(ws, "gateways", "register", "gw-1", "--token-file", str(ws.folder)),
        1,
        "--token-file {folder}: is a folder; give the file itself",
    ),
    "register with an empty --token-file": (
        lambda ws: on(
            ws, "gateways", "register", "gw-1", "--token-file", str(ws.folder / "empty.token")
        ),
        1,
        "--token-file {folder}/empty.token: is empty; write the token into it",
    ),
    "register with a --ca that is no certificate": (
        lambda ws: on(ws, "gateways", "register", "gw-1", "--address", "h:1", "--ca", str(ws.key)),
        1,
        "--ca {folder}/keys/publisher.pub: not a PEM certificate",
    ),
    "serve with a --tls-key that is no private key": (
        lambda ws: on(
            ws,
            "serve",
            "--port",
            "0",
            "--tls-cert",
            str(ws.pki.server_cert),
            "--tls-key",
            str(ws.key),
        ),
        1,
        "--tls-key {folder}/keys/publisher.pub: not an unencrypted PEM private key",
    ),
    "serve with the key of another certificate": (
        lambda ws: on(
            ws,
            "serve",
            "--port",
            "0",
            "--tls-cert",
            str(ws.pki.server_cert),
            "--tls-key",
            str(ws.pki.client_key),
        ),
        1,
        "--tls-key {folder}/pki/client.key: does not match the certificate in --tls-cert",
    ),
    "register with a missing --ca": (
        lambda ws: on(ws, "gateways", "register", "gw-1", "--address", "h:1", "--ca", "/no.pem"),
        1,
        "--ca /no.pem: no such file",
    ),
    "serve with a missing --gateway-token-file": (
        lambda ws: on(ws, "serve", "--port", "0", "--gateway-token-file", "/nonexistent.token"),
        1,
        "--gateway-token-file /nonexistent.token: no such file",
    ),
    "serve with --tls-cert but no --tls-key": (
        lambda ws: on(ws, "serve", "--port", "0", "--tls-cert", str(ws.key)),
        1,
        "--tls-cert and --tls-key go together: give both for TLS, neither for plaintext",
    ),
    "a database server that is not there": (
        lambda ws: ["models", "--db", f"postgresql://edge:secret@127.0.0.1:{free_port()}/fleet"],
        2,
        "cannot open database postgresql://edge:***@127.0.0.1:",
    ),
    "a database URL of an unsupported kind": (
        lambda ws: ["models", "--db", "mysql://edge@db/fleet"],
        2,
        "unsupported database URL mysql://edge@db/fleet: "
        "use sqlite:///FILE or postgresql://USER@HOST:PORT/DB",
    ),
    "an SQLite file under a regular file": (
        lambda ws: ["models", "--db", f"sqlite:///{ws.folder / 'a-file' / 'orchestrator.db'}"],
        2,
        "cannot open database sqlite:///{folder}/a-file/orchestrator.db: ",
    ),
    "a missing argument": (
        lambda ws: ["deploy", "gray"],
        2,
        "the following arguments are required: version, --gateways "
        "(see `edge-orchestrator deploy --help`)",
    ),
    "evidence flags without --gate": (
        lambda ws: on(ws, "deploy", "gray", "2", "--gateways", "all", "--evidence-requests", "5"),
        2,
        "--evidence-requests/--evidence-minutes need --gate shadow",
    ),
    "a gate on a stage-only rollout": (
        lambda ws: on(
            ws, "deploy", "gray", "2", "--gateways", "all", "--gate", "shadow", "--stage-only"
        ),
        1,
        "--stage-only and --gate do not combine: a gate activates what passes it",
    ),
    "a window that is no time of day": (
        lambda ws: on(
            ws, "deploy", "gray", "2", "--gateways", "all", "--window", "site=lab@25:00-01:00"
        ),
        1,
        "--window 'site=lab@25:00-01:00': window '25:00-01:00' is not HH:MM-HH:MM in 24-hour "
        "local time, such as 02:00-04:00 (optionally after SELECTOR@)",
    ),
    "activate an unknown rollout": (
        lambda ws: on(ws, "rollout", "r-nope", "--activate"),
        1,
        "no rollout 'r-nope'",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_line_and_a_non_zero_exit(mistake: str, ws: Workspace) -> None:
    args, code, expected = MISTAKES[mistake]
    result = run(*args(ws))
    deploy_parser = ("a missing argument", "evidence flags without --gate")
    prog = "edge-orchestrator deploy" if mistake in deploy_parser else "edge-orchestrator"
    assert expected.format(folder=ws.folder) in the_error(result, prog)
    assert result.returncode == code, result.stderr
    assert "secret" not in result.stderr  # a password in --db is never printed


def test_serve_on_a_port_another_process_holds(ws: Workspace) -> None:
    holder = OrchestratorProcess(f"sqlite:///{ws.folder / 'holder.db'}", ws.artifacts)
    try:
        result = run(*on(ws, "serve", "--port", str(holder.port)))
    finally:
        holder.terminate()
    assert the_error(result) == (
        f"cannot listen on 127.0.0.1:{holder.port}: the port is in use by another program; "
        "stop it or choose another port with --port"
    )
    assert result.returncode == 1


# -- without the cloud extra ---------------------------------------------------------------

# The CLI as the console script runs it, in an interpreter where the named modules cannot
# be imported (as in an install without the `cloud` extra).
WITHOUT = (
    "import sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None\n"
    "from cloud_orchestrator.cli import main\n"
    "sys.argv[0] = 'edge-orchestrator'\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def without(modules: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, modules, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["deploy", "--help"]])
def test_version_and_help_work_without_the_cloud_extra(args: list[str], tmp_path: Path) -> None:
    result = without("sqlalchemy,psycopg,tqdm", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "edge-orchestrator" in result.stdout


@pytest.mark.parametrize(
    ("missing", "args"),
    [
        ("sqlalchemy", ["models"]),
        ("sqlalchemy", ["serve", "--port", "0"]),
        ("psycopg", ["models", "--db", "postgresql://edge@127.0.0.1:1/fleet"]),
        ("tqdm", ["deploy", "gray", "2", "--gateways", "all"]),
    ],
)
def test_a_command_without_the_cloud_extra_names_it(
    missing: str, args: list[str], tmp_path: Path
) -> None:
    result = without(missing, *args, cwd=tmp_path)
    assert the_error(result) == (
        f"this command needs the cloud extra (missing module {missing!r}): {EXTRA}"
    )
    assert result.returncode == 2
    assert not (tmp_path / "orchestrator.db").exists()  # nothing was created
