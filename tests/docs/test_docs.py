"""The documents' command examples, run as a reader would run them.

Each Markdown file of the repository (README.md, CONTRIBUTING.md, docs/*.md) is one
session: a copy of the committed tree (what a fresh clone holds, with the test
virtualenv linked in as ``.venv``), one bash process, and every runnable block in
document order: ``console`` and ``bash`` commands, ``python`` blocks as scripts. A
command must exit 0, or with the status its shown output ends with (``(exit 1)``), and
its output must say what the document shows (tests/docs/output_match.py: names, states
and integers exactly; decimals, times and ``...`` loosely). Blocks whose first line is
``# illustrative: <why>`` are not run; the reason is visible to every reader.

What differs from a reader's terminal, and why:
- the virtualenv is active (the README tells readers to ``source .venv/bin/activate``);
- the documented ports (50051, 8080, ...) are mapped to free ones in commands, code and
  shown output, so a gateway a developer runs cannot break the test;
- ``make run`` (a server that runs until stopped) is started in the background and
  waited for; ``make test`` is not run here: it is the command that runs this test;
- ``grpcurl`` is tests/docs/grpcurl_standin.py, which also knows types only through
  the gateway's reflection service.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import (
    COMMAND_LANGUAGES,
    DATA_LANGUAGES,
    Block,
    Command,
    read_blocks,
)
from tests.docs.output_match import output_matches, screen_text
from tests.docs.shell_session import ShellSession
from tests.support.orchestrator import free_port
from tests.support.paths import REPO

DOCUMENTS = sorted(
    str(path.relative_to(REPO))
    for path in [REPO / "README.md", REPO / "CONTRIBUTING.md", *REPO.glob("docs/*.md")]
    if path.exists()
)
DOCUMENTED_PORTS = (50051, 8080, 50052, 8082, 50061, 8081, 50070, 9470)
# Documents whose examples call the demo gateway of `make run` without starting it.
NEEDS_DEMO_GATEWAY = {"docs/kserve-v2.md"}
# EDGE_DOCS_RECORD=1 (with pytest -s): print every output without comparing it, to write
# the output a document should show; exit statuses are still checked.
RECORD = os.environ.get("EDGE_DOCS_RECORD") == "1"
EXIT_STATUS = re.compile(r"^\(exit (\d+)\)$")
COMMAND_TIMEOUT = 180.0

pytestmark = pytest.mark.slow


def test_every_fence_declares_what_it_holds() -> None:
    """A block without a language could be a command nobody runs: each one says what
    it is, so the runner knows which blocks are examples to run."""
    known = COMMAND_LANGUAGES | DATA_LANGUAGES
    unclear = [
        f"{block.where} ```{block.language}"
        for document in DOCUMENTS
        for block in read_blocks(REPO / document)
        if block.language not in known
    ]
    assert not unclear, f"fences need one of {sorted(known)}: {unclear}"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The committed tree as a fresh clone has it, plus the test virtualenv."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    target = tmp_path / "clone"
    for name in filter(None, (f.decode() for f in files)):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.executable).parent.parent)
    return target


@pytest.mark.timeout(900)
@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_examples(document: str, clone: Path, tmp_path: Path) -> None:
    blocks = [block for block in read_blocks(clone / document) if block.runnable]
    if not blocks:
        pytest.skip(f"{document} has no runnable examples")
    ports = {port: free_port() for port in DOCUMENTED_PORTS}
    with DocumentSession(clone, tmp_path, ports) as run:
        if document in NEEDS_DEMO_GATEWAY:
            run(Block(Path("(prelude)"), 0, "bash", "make run", (Command("make run", 0),)))
        for block in blocks:
            run(block)


class _Runner:
    def __init__(self, session: ShellSession, scratch: Path, ports: dict[int, int]) -> None:
        self.session, self.scratch, self.ports = session, scratch, ports

    def __call__(self, block: Block) -> None:
        if block.language == "python":
            script = self.scratch / f"block-{block.line}.py"
            script.write_text(self.mapped(block.body))
            self.check(block, Command(f"python {script}", block.line))
            return
        for command in block.commands:
            self.check(block, command)

    def mapped(self, text: str) -> str:
        for documented, free in self.ports.items():
            text = re.sub(rf"\b{documented}\b", str(free), text)
        return text

    def check(self, block: Block, command: Command) -> None:
        where = f"{block.path.name}:{command.line}"
        typed = command.text.split("#", 1)[0].strip()
        if typed == "make test":
            return  # this test is part of `make test`
        if typed == "make run":
            self.start_demo_gateway(where)
            return
        expected = tuple(self.mapped(line) for line in command.expected)
        status = 0
        if expected and (match := EXIT_STATUS.match(expected[-1].strip())):
            status, expected = int(match[1]), expected[:-1]
        outcome = self.session.run(self.mapped(command.text), COMMAND_TIMEOUT)
        shown = screen_text(outcome.output)
        print(f"{where}: $ {command.text}\n{shown}(exit {outcome.status})")  # shown on failure
        assert outcome.status == status, (
            f"{where}: `{command.text}` exited {outcome.status}, expected {status}:\n{shown}"
        )
        assert RECORD or output_matches(expected, outcome.output), (
            f"{where}: `{command.text}` printed\n{shown}\nthe document shows\n"
            + "\n".join(expected)
        )

    def start_demo_gateway(self, where: str) -> None:
        """`make run` serves until stopped: start it as a job, wait for SERVING."""
        grpc_port, http_port = self.ports[50051], self.ports[8080]
        # The stamp is the test virtualenv's own; -o keeps make from reinstalling into it.
        launch = (
            f"GRPC_PORT={grpc_port} HTTP_PORT={http_port} make -o .venv/.runtime run "
            f"> {self.scratch}/make-run.log 2>&1 &"
        )
        assert self.session.run(launch, 10).status == 0
        wait = f"edge-client --target 127.0.0.1:{grpc_port} health --wait 60"
        outcome = self.session.run(wait, 90)
        log = (self.scratch / "make-run.log").read_text(errors="replace")
        assert outcome.status == 0, f"{where}: make run did not serve:\n{outcome.output}\n{log}"


class DocumentSession:
    def __init__(self, clone: Path, tmp_path: Path, ports: dict[int, int]) -> None:
        self.clone, self.tmp, self.ports = clone, tmp_path, ports

    def __enter__(self) -> _Runner:
        scratch = self.tmp / "scratch"
        bin_dir = self.tmp / "bin"
        home = self.tmp / "home"
        for folder in (scratch, bin_dir, home):
            folder.mkdir()
        grpcurl = bin_dir / "grpcurl"
        standin = Path(__file__).with_name("grpcurl_standin.py")
        grpcurl.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{standin}" "$@"\n')
        grpcurl.chmod(0o755)
        venv_bin = self.clone / ".venv" / "bin"
        env = {
            "PATH": f"{bin_dir}:{venv_bin}:{os.environ['PATH']}",
            "VIRTUAL_ENV": str(self.clone / ".venv"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            # The defaults a reader gets (50051, 8080), mapped like the ports in the text.
            "EDGE_TARGET": f"127.0.0.1:{self.ports[50051]}",
            "EDGE_GRPC_PORT": str(self.ports[50051]),
            "EDGE_HTTP_PORT": str(self.ports[8080]),
            "TERM": "dumb",
        }
        self.session = ShellSession(self.clone, env, scratch)
        return _Runner(self.session, scratch, self.ports)

    def __exit__(self, *exc: object) -> None:
        self.session.close()
