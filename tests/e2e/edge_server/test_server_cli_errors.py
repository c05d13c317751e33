"""`edge-server` refuses every start-up mistake with one line on stderr,
`edge-server: error: <what is wrong and what to do>`, and a non-zero exit: no
traceback, no "Exception ignored", nothing but the normal log lines before it."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.certs import Pki, make_pki
from tests.support.processes import BIN

pytestmark = pytest.mark.slow

LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) \S+: ")


@dataclass
class Files:
    """What a case can point edge-server at: good and bad files in a temporary folder."""

    root: Path  # an empty, valid model root
    folder: Path  # a folder where a file is expected
    junk: Path  # a file with contents no parser accepts
    empty: Path
    missing: Path
    pki: Pki


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    base = tmp_path_factory.mktemp("cli-errors")
    (base / "models").mkdir()
    (base / "a-folder").mkdir()
    (base / "junk.txt").write_text("these bytes are nothing edge-server can read\n")
    (base / "empty.txt").write_text("")
    (base / "list.json").write_text("[1, 2]\n")
    return Files(
        base / "models",
        base / "a-folder",
        base / "junk.txt",
        base / "empty.txt",
        base / "missing.txt",
        make_pki(base / "pki"),
    )


def run_server(args: list[str], timeout: float = 30.0) -> tuple[int, list[str]]:
    """Run edge-server until it exits; a server that starts instead fails the test."""
    command = [str(BIN / "edge-server"), "--grpc-port", "0", "--http-port", "0", *args]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"edge-server kept running instead of refusing {args}:\n{stderr}")
    return proc.returncode, stderr.splitlines()


def assert_one_error_line(lines: list[str], *fragments: str) -> str:
    others = [line for line in lines if not LOG_LINE.match(line)]
    assert len(others) == 1, "\n".join(lines)
    [error] = others
    assert lines[-1] == error, "\n".join(lines)  # nothing after the error line
    assert error.startswith("edge-server: error: "), error
    for fragment in fragments:
        assert fragment in error, error
    return error


Args = Callable[[Files], list[str]]


def _with_root(*extra: Callable[[Files], list[str]]) -> Args:
    return lambda f: ["--model-root", str(f.root), *(a for part in extra for a in part(f))]


def _tls(cert: Callable[[Files], Path], key: Callable[[Files], Path]) -> Args:
    return _with_root(lambda f: ["--tls-cert", str(cert(f)), "--tls-key", str(key(f))])


# id: (arguments, exit code, fragments the one error line must hold)
CASES: dict[str, tuple[Args, int, tuple[str, ...]]] = {
    "model-root-missing": (
        lambda f: ["--model-root", str(f.missing)], 2, ("--model-root", "missing.txt", "create"),
    ),
    "model-root-is-a-file": (
        lambda f: ["--model-root", str(f.junk)], 2, ("--model-root", "junk.txt", "not a folder"),
    ),
    "trusted-keys-missing": (
        _with_root(lambda f: ["--trusted-keys", str(f.missing)]), 2,
        ("--trusted-keys", "missing.txt", "no such file"),
    ),
    "trusted-keys-not-a-key": (
        _with_root(lambda f: ["--trusted-keys", str(f.junk)]), 2,
        ("--trusted-keys", "junk.txt", "not an Ed25519 public key", "model-tools keygen"),
    ),
    "management-token-file-missing": (
        _with_root(lambda f: ["--management-token-file", str(f.missing)]), 2,
        ("--management-token-file", "missing.txt", "no such file"),
    ),
    "management-token-file-is-a-folder": (
        _with_root(lambda f: ["--management-token-file", str(f.folder)]), 2,
        ("--management-token-file", "a-folder", "is a folder"),
    ),
    "management-token-file-empty": (
        _with_root(lambda f: ["--management-token-file", str(f.empty)]), 2,
        ("--management-token-file", "empty.txt", "is empty"),
    ),
    "tls-cert-missing": (
        _tls(lambda f: f.missing, lambda f: f.pki.server_key), 2,
        ("--tls-cert", "missing.txt", "no such file"),
    ),
    "tls-cert-not-pem": (
        _tls(lambda f: f.junk, lambda f: f.pki.server_key), 2,
        ("--tls-cert", "junk.txt", "PEM certificate"),
    ),
    "tls-key-is-a-folder": (
        _tls(lambda f: f.pki.server_cert, lambda f: f.folder), 2,
        ("--tls-key", "a-folder", "is a folder"),
    ),
    "tls-key-not-pem": (
        _tls(lambda f: f.pki.server_cert, lambda f: f.junk), 2,
        ("--tls-key", "junk.txt", "PEM private key"),
    ),
    "tls-key-of-another-certificate": (
        _tls(lambda f: f.pki.server_cert, lambda f: f.pki.client_key), 2,
        ("--tls-key", "client.key", "does not match", "server.pem"),
    ),
    "tls-client-ca-not-pem": (
        _with_root(lambda f: ["--tls-cert", str(f.pki.server_cert), "--tls-key",
                              str(f.pki.server_key), "--tls-client-ca", str(f.junk)]), 2,
        ("--tls-client-ca", "junk.txt", "PEM certificate"),
    ),
    "log-level-unknown": (
        _with_root(lambda f: ["--log-level", "chatty"]), 2, ("log_level", "DEBUG, INFO"),
    ),
    "config-missing": (
        _with_root(lambda f: ["--config", str(f.missing)]), 2, ("--config", "missing.txt"),
    ),
    "config-is-a-folder": (
        _with_root(lambda f: ["--config", str(f.folder)]), 2, ("--config", "a-folder"),
    ),
    "config-not-json": (
        _with_root(lambda f: ["--config", str(f.junk)]), 2, ("--config", "junk.txt", "JSON"),
    ),
    "config-not-an-object": (
        _with_root(lambda f: ["--config", str(f.junk.with_name("list.json"))]), 2,
        ("--config", "list.json", "JSON object"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_start_up_mistake_is_one_line(files: Files, case: str) -> None:
    args, code, fragments = CASES[case]
    returncode, lines = run_server(args(files))
    assert returncode == code, "\n".join(lines)
    assert_one_error_line(lines, *fragments)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port this test holds open (listening), so edge-server cannot bind it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


@pytest.mark.parametrize("flag", ["--grpc-port", "--http-port", "--management-port"])
def test_busy_port_is_one_line(files: Files, busy_port: int, flag: str) -> None:
    returncode, lines = run_server(["--model-root", str(files.root), flag, str(busy_port)])
    assert returncode == 1, "\n".join(lines)
    error = assert_one_error_line(lines, f"127.0.0.1:{busy_port}", flag, "in use")
    assert "Traceback" not in "\n".join(lines) and "Exception ignored" not in "\n".join(lines)
    assert error.count(flag) == 1


def test_host_of_another_machine_is_one_line(files: Files) -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    returncode, lines = run_server(["--model-root", str(files.root), "--host", "192.0.2.1"])
    assert returncode == 1, "\n".join(lines)
    assert_one_error_line(lines, "192.0.2.1", "not an address of this machine", "--host")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["--grpc-port"], "expected one argument"), (["--no-such-flag"], "unrecognized")],
    ids=["missing-value", "unknown-flag"],
)
def test_usage_mistake_is_one_line(args: list[str], fragment: str) -> None:
    returncode, lines = run_server(args)
    assert returncode == 2, "\n".join(lines)
    assert_one_error_line(lines, fragment, "edge-server --help")
