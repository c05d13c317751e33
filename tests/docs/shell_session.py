"""One bash process per document: commands run in order, as a reader types them.

State carries over between commands exactly as in a reader's terminal (the working
folder, ``export``, an activated virtualenv, jobs started with ``&``). Each command's
stdout and stderr go, interleaved, to a file of its own; its exit status is written
next to it. Closing the session stops the shell and everything it started (its own
process group).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    status: int
    output: str


class CommandTimeout(Exception):
    pass


class ShellSession:
    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self._scratch = scratch
        self._count = 0
        self._shell = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            text=True,
            start_new_session=True,
        )

    def run(self, command: str, timeout: float) -> Outcome:
        self._count += 1
        output = self._scratch / f"command-{self._count}.out"
        status = self._scratch / f"command-{self._count}.status"
        # Braces keep `cmd &` a job of this shell; stdin is never the session's pipe.
        script = f"{{\n{command}\n}} >{output} 2>&1 </dev/null\necho $? >{status}.tmp\n"
        script += f"mv {status}.tmp {status}\n"
        assert self._shell.stdin is not None
        self._shell.stdin.write(script)
        self._shell.stdin.flush()
        deadline = time.monotonic() + timeout
        while not status.exists():
            if self._shell.poll() is not None:
                return Outcome(-1, _read(output) + "\n(the shell itself exited)")
            if time.monotonic() > deadline:
                raise CommandTimeout(f"no exit after {timeout:.0f} s; output:\n{_read(output)}")
            time.sleep(0.05)
        return Outcome(int(status.read_text()), _read(output))

    def close(self) -> None:
        """SIGTERM to the whole group (servers drain), SIGKILL what is left after 15 s."""
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self._shell.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(self._shell.pid):
                self._shell.poll()
                time.sleep(0.1)
        if self._shell.stdin is not None:
            self._shell.stdin.close()
        self._shell.wait(timeout=5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
