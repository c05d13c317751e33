"""A user namespace whose processes exec aarch64 programs through qemu, host left untouched.

The machines have no binfmt_misc handler for aarch64, and registering one would change the
kernel for every process on the machine. Since Linux 6.7 a user namespace can mount its own
binfmt_misc instance, seen only by its processes. `Namespace` starts a keeper process in a
new user and mount namespace that maps host uids/gids 0-65535 onto themselves (files owned
by root, or by the image's uid 10001, keep their owners on disk), mounts that private
binfmt_misc and registers qemu-aarch64-static with Debian's own magic and mask from
/usr/share/binfmts/qemu-aarch64 (package qemu-user-static). The F flag opens qemu when the
handler is registered, so it works inside chroots and containers too.

Commands join the keeper's namespaces with nsenter: a container started by one `podman`
call can only be reached (exec, healthcheck, stop) from the user namespace that owns it.
Needs root on the host: a uid map wider than one id needs CAP_SETUID there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

DEBIAN_BINFMT = Path("/usr/share/binfmts/qemu-aarch64")
MAPPED_IDS = 65536  # root, the system users and the image's uid/gid 10001

# The keeper: waits for the id maps the host side writes, mounts the private binfmt_misc,
# registers the handler ($0), then waits on its stdin (closed by the host side, or by the
# kernel when the driver dies, so no keeper outlives it).
_KEEPER = (
    "until grep -q . /proc/self/gid_map; do sleep 0.02; done; "
    "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || "
    '{ echo "cannot mount a private binfmt_misc (Linux >= 6.7 needed)" >&2; exit 97; }; '
    'printf "%s" "$0" > /proc/sys/fs/binfmt_misc/register || '
    '{ echo "cannot register qemu-aarch64 in the private binfmt_misc" >&2; exit 98; }; '
    "echo ready; exec cat >/dev/null"
)


class NamespaceError(Exception):
    """The namespace could not be set up; the message says why."""


def registration() -> str:
    """The binfmt_misc register line from Debian's qemu-aarch64 description (escapes kept)."""
    if not DEBIAN_BINFMT.is_file():
        raise NamespaceError(f"{DEBIAN_BINFMT} missing: apt-get install qemu-user-static")
    lines = DEBIAN_BINFMT.read_text(encoding="utf-8").splitlines()
    fields = dict(line.split(None, 1) for line in lines if " " in line)
    # The kernel decodes the \xNN escapes itself: they stay text here.
    flags = "F" + ("P" if fields.get("preserve") == "yes" else "")
    flags += "C" if fields.get("credentials") == "yes" else ""
    interpreter = shutil.which("qemu-aarch64-static") or fields["interpreter"]
    offset = fields.get("offset", "0")
    return f":qemu-aarch64:M:{offset}:{fields['magic']}:{fields['mask']}:{interpreter}:{flags}"


class Namespace:
    """`with Namespace() as ns: ns.run([...])`; every command shares one namespace."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise NamespaceError("mapping uids 0-65535 into a user namespace needs root")
        self.keeper = subprocess.Popen(
            ["unshare", "--user", "--mount", "sh", "-c", _KEEPER, registration()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._map_ids()
        assert self.keeper.stdout is not None and self.keeper.stderr is not None
        if self.keeper.stdout.readline().strip() != "ready":
            self.keeper.wait(10)
            raise NamespaceError(f"namespace keeper failed: {self.keeper.stderr.read().strip()}")

    def _map_ids(self) -> None:
        own = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + 10
        # unshare(1) execs the shell in the same PID once it is in the new namespace.
        while _user_ns(self.keeper.pid) in (own, None):
            if self.keeper.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise NamespaceError("unshare --user --mount did not start a user namespace")
            time.sleep(0.01)
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{self.keeper.pid}/{name}").write_text(f"0 0 {MAPPED_IDS}\n")

    def command(self, argv: list[str], cwd: str = "/") -> list[str]:
        """`argv` in the namespace, as its root, in `cwd`.

        Entering the mount namespace resets the working folder, and nsenter --wd keeps a
        folder of the old one (getcwd fails): env --chdir changes it once inside.
        """
        enter = ["nsenter", f"--target={self.keeper.pid}", "--user", "--mount", "--"]
        return [*enter, "env", f"--chdir={cwd}", *argv]

    def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run to completion (own process group), stdout+stderr captured as text.

        On a time-out the whole group is killed, the command's children too, and
        subprocess.TimeoutExpired carries the output so far.
        """
        proc = subprocess.Popen(
            self.command(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout, out) from None
        return subprocess.CompletedProcess(argv, proc.returncode, out, "")

    def close(self) -> None:
        if self.keeper.stdin and not self.keeper.stdin.closed:
            self.keeper.stdin.close()
        try:
            self.keeper.wait(10)
        except subprocess.TimeoutExpired:
            self.keeper.kill()
            self.keeper.wait(10)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _user_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/user")
    except OSError:
        return None
