"""`edge-client` as a real subprocess against a real `edge-server`: each user mistake is
one line on stderr, `edge-client: error: <what is wrong and what to do>`, and exit 1;
`--version`; a management call without a token says how to pass one; a rejected push
of a new model shows in `edge-client models`."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bundles import build_bundle, make_keys
from tests.support.certs import make_pki
from tests.support.lifecycle import GRAY_MANIFEST, gray_png
from tests.support.model_factory import build_model_root, linear_classifier
from tests.support.processes import BIN, ServerProcess

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token"


@dataclass
class Setup:
    gateway: ServerProcess
    work: Path
    image: Path
    token_file: Path
    ca_cert: Path  # of a CA the (plaintext) gateway has nothing to do with


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("client-cli")
    root = build_model_root(work / "models")
    _, public = make_keys(work / "keys")
    (work / "token").write_text(TOKEN + "\n")
    (work / "empty-token").write_text("\n")
    (work / "a-folder").mkdir()
    (work / "junk.edgebundle").write_text("not a tar archive")
    image = work / "gray.png"
    image.write_bytes(gray_png())
    gateway = ServerProcess(
        ["--model-root", str(root), "--trusted-keys", str(public),
         "--management-token-file", str(work / "token"), "--rollback-window-seconds", "0"]
    )  # fmt: skip
    try:
        gateway.wait_serving()
        yield Setup(gateway, work, image, work / "token", make_pki(work / "pki").ca_cert)
    finally:
        assert gateway.terminate() == 0


def run_client(*args: str, target: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    command = [str(BIN / "edge-client"), *(["--target", target] if target else []), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environ)


def the_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a refused command (exit 1)."""
    lines = done.stderr.splitlines()
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert len(lines) == 1 and lines[0].startswith("edge-client: error: "), done.stderr
    return lines[0]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_version_matches_edge_server() -> None:
    client = run_client("--version")
    server = subprocess.run(
        [str(BIN / "edge-server"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert client.returncode == 0 and client.stderr == "", client.stderr
    assert client.stdout.split() == ["edge-client", server.stdout.split()[1]]


def test_management_call_without_token_says_how_to_pass_one(setup: Setup) -> None:
    error = the_error(run_client("models", target=setup.gateway.target))
    assert "UNAUTHENTICATED" in error
    for how in ("edge-client --token TOKEN", "--token-file FILE", "EDGE_TOKEN",
                "authorization: Bearer <token>"):  # fmt: skip
        assert how in error, error
    target = setup.gateway.target
    listed = run_client("--token-file", str(setup.token_file), "models", target=target)
    assert listed.returncode == 0 and "gray" in listed.stdout, listed.stderr


def test_rejected_push_of_a_new_model_shows_in_models(setup: Setup) -> None:
    model = linear_classifier(setup.work / "fresh" / "model.onnx", seed=9)
    unsigned = build_bundle(
        setup.work / "fresh.edgebundle", model, "fresh", "1", None, GRAY_MANIFEST
    )
    target = setup.gateway.target
    pushed = run_client("--token", TOKEN, "push", "--quiet", str(unsigned), target=target)
    assert pushed.returncode == 1 and "REJECTED" in pushed.stdout, pushed.stdout
    assert "bundle fresh:1 is not signed" in pushed.stdout
    listed = run_client("--token", TOKEN, "models", target=target)
    row = next((line for line in listed.stdout.splitlines() if line.startswith("fresh")), "")
    assert "REJECTED" in row and "bundle fresh:1 is not signed" in row, listed.stdout


Args = Callable[[Setup], list[str]]

# id: (arguments after --target, fragments the one error line must hold)
MISTAKES: dict[str, tuple[Args, tuple[str, ...]]] = {
    "unknown-model-predict": (
        lambda s: ["predict", "--model", "nope", str(s.image)],
        ("NOT_FOUND", "'nope'", "gray"),
    ),
    "unknown-model-activate": (
        lambda s: ["--token", TOKEN, "activate", "nope", "1"], ("NOT_FOUND", "'nope'"),
    ),
    "unknown-model-models": (
        lambda s: ["--token", TOKEN, "models", "--model", "nope"], ("NOT_FOUND", "'nope'", "gray"),
    ),
    "missing-image": (
        lambda s: ["predict", str(s.work / "missing.png")], ("cannot read", "missing.png"),
    ),
    "image-is-a-folder": (
        lambda s: ["predict", str(s.work / "a-folder")], ("cannot read", "a-folder"),
    ),
    "missing-bundle": (
        lambda s: ["--token", TOKEN, "push", str(s.work / "missing.edgebundle")],
        ("cannot read", "missing.edgebundle", "No such file"),
    ),
    "bundle-not-a-tar": (
        lambda s: ["--token", TOKEN, "push", str(s.work / "junk.edgebundle")],
        ("junk.edgebundle", "not a model bundle"),
    ),
    "missing-token-file": (
        lambda s: ["--token-file", str(s.work / "missing-token"), "models"],
        ("--token-file", "missing-token", "no such file"),
    ),
    "token-file-is-a-folder": (
        lambda s: ["--token-file", str(s.work / "a-folder"), "models"],
        ("--token-file", "a-folder", "is a folder"),
    ),
    "empty-token-file": (
        lambda s: ["--token-file", str(s.work / "empty-token"), "models"],
        ("--token-file", "empty-token", "is empty"),
    ),
    "missing-ca-cert": (
        lambda s: ["--ca-cert", str(s.work / "missing.pem"), "health"],
        ("cannot read", "missing.pem"),
    ),
    "ca-cert-not-pem": (
        lambda s: ["--ca-cert", str(s.work / "junk.edgebundle"), "health"],
        ("junk.edgebundle", "not a PEM certificate"),
    ),
    "tls-to-a-plaintext-gateway": (
        lambda s: ["--ca-cert", str(s.ca_cert), "health"],
        ("UNAVAILABLE", "TLS handshake", "--ca-cert"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MISTAKES))
def test_mistake_is_one_line(setup: Setup, case: str) -> None:
    args, fragments = MISTAKES[case]
    error = the_error(run_client(*args(setup), target=setup.gateway.target))
    for fragment in fragments:
        assert fragment in error, error


def test_unreachable_gateway_is_one_line() -> None:
    target = f"127.0.0.1:{closed_port()}"
    error = the_error(run_client("--timeout", "2", "health", target=target))
    assert "UNAVAILABLE" in error and target in error
    assert "--target" in error and "EDGE_TARGET" in error, error


def test_tls_mistakes_against_a_tls_gateway(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    root = build_model_root(tmp_path / "models")
    gateway = ServerProcess(
        ["--model-root", str(root), "--tls-cert", str(pki.server_cert),
         "--tls-key", str(pki.server_key)]
    )  # fmt: skip
    try:
        target = gateway.target
        plaintext = the_error(run_client("--timeout", "3", "health", target=target))
        assert "UNAVAILABLE" in plaintext and "pass --ca-cert" in plaintext
        other_ca = make_pki(tmp_path / "other-pki").ca_cert  # did not issue the gateway's
        wrong_ca = the_error(run_client("--ca-cert", str(other_ca), "health", target=target))
        assert "TLS handshake failed" in wrong_ca and "--ca-cert" in wrong_ca
        served = run_client("--ca-cert", str(pki.ca_cert), "health", target=target)
        assert served.returncode in (0, 1) and served.stderr == "", served.stderr
    finally:
        assert gateway.terminate() == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required: COMMAND"),
        (["predict"], "IMAGE"),
        (["predict", "x.png", "--top-k", "-1"], "--top-k"),
        (["--timeout", "0", "health"], "--timeout"),
        (["bogus"], "invalid choice"),
        (["--client-cert", "c.pem", "--client-key", "k.pem", "health"], "need --ca-cert"),
    ],
    ids=["no-command", "no-image", "negative-top-k", "zero-timeout", "unknown-command",
         "mtls-without-ca"],
)  # fmt: skip
def test_usage_mistake_is_one_line(argv: list[str], fragment: str) -> None:
    done = run_client(*argv)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-client"), done.stderr
    assert ": error: " in lines[0] and fragment in lines[0] and "--help" in lines[0]


def test_health_wait_returns_once_the_gateway_serves(tmp_path: Path) -> None:
    """`edge-client health --wait N` right after starting edge-server (README): the
    client is started first and keeps asking until the gateway is up and SERVING."""
    port = closed_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    waiting = subprocess.Popen(
        [str(BIN / "edge-client"), "--target", f"127.0.0.1:{port}", "health", "--wait", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ,
    )  # fmt: skip
    gateway = None
    try:
        time.sleep(1.0)  # the client has met a closed port at least once
        assert waiting.poll() is None, waiting.communicate()
        root = build_model_root(tmp_path / "models")
        gateway = ServerProcess(["--model-root", str(root), "--grpc-port", str(port)])
        out, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
        assert "SERVING" in out and "NOT_SERVING" not in out and err == ""
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
        if gateway is not None:
            assert gateway.terminate() == 0


def test_health_wait_gives_up_with_one_line() -> None:
    target = f"127.0.0.1:{closed_port()}"
    started = time.monotonic()
    error = the_error(run_client("health", "--wait", "2", target=target))
    assert 2 <= time.monotonic() - started < 20
    assert "UNAVAILABLE" in error and target in error
