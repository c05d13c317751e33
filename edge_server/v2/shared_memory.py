"""System shared-memory regions: the Open Inference Protocol's shared-memory extension.

An app on the gateway's own board (a camera pipeline, say) writes its input tensor
into a POSIX shared-memory object (``/dev/shm/<key>``), registers a region of it once,
and then sends inference requests that name the region instead of carrying the bytes;
requested outputs can be written back into a region the same way. For a 602 KB image
tensor that saves receiving, parsing and copying the bytes through gRPC on every call.

Registrations live in a small JSON state file that every process of one gateway shares
(``--workers``): whichever process a client's connection reaches knows its regions.
Each process opens the objects itself and reads and writes them with pread/pwrite,
never through a mapping: a client that shrinks its object after registering gets an
error, never a gateway killed by SIGBUS.

Access control (docs/kserve-v2.md, "Who may use it"): every region records the
fingerprint of the credential that registered it and the uid that credential is bound
to (edge_server/v2/shared_memory_apps.py). Each open checks, on the opened descriptor,
that the object is a regular file in /dev/shm owned by that uid and is none of the
gateway's own files; a call reads and writes only regions its own credential registered.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_contracts.atomic_files import write_json_atomic
from edge_server.errors import (
    AccessDenied,
    InvalidInput,
    QuotaExceeded,
    RegionExists,
    RegionNotFound,
)
from edge_server.v2.shared_memory_apps import Owner

logger = logging.getLogger(__name__)

# shm_open names: one leading slash, then a file name in /dev/shm.
_KEY = re.compile(r"/[A-Za-z0-9_.-]{1,200}")
SHM_DIR = Path("/dev/shm")
# The state file, its lock and write_json_atomic's temp files, of any gateway on the board.
_GATEWAY_FILE = re.compile(r"\.?edge-gateway-.*\.shm-regions\..*")


@dataclass(frozen=True)
class Region:
    name: str
    key: str
    offset: int
    byte_size: int
    owner: str  # fingerprint of the credential that registered it (never the token)
    uid: int  # the uid its object must belong to


_FIELDS = {"name": str, "key": str, "offset": int, "byte_size": int, "owner": str, "uid": int}


def _parse_state(text: str) -> dict[str, Region]:
    """The registrations in a state file's text; ValueError when it is not one."""
    entries = json.loads(text or "{}")
    if not isinstance(entries, dict):
        raise ValueError("not a JSON object")
    regions = {}
    for name, fields in entries.items():
        if not isinstance(fields, dict) or set(fields) != set(_FIELDS):
            raise ValueError(f"region {name!r}: fields {sorted(fields)}")
        if not all(type(fields[field]) is kind for field, kind in _FIELDS.items()):
            raise ValueError(f"region {name!r}: a field of the wrong type")
        regions[name] = Region(**fields)
    return regions


def state_file_for(host: str, port: int) -> Path:
    """Where the gateway listening on host:port keeps its registrations."""
    folder = SHM_DIR if SHM_DIR.is_dir() else Path(tempfile.gettempdir())
    safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", host)
    return folder / f"edge-gateway-{safe_host}-{port}.shm-regions.json"


class SharedMemoryRegistry:
    def __init__(self, max_regions: int, shm_dir: Path = SHM_DIR) -> None:
        self._max_regions = max_regions
        # Resolved once: an object must resolve to a file directly inside this folder.
        self._shm_dir = Path(os.path.realpath(shm_dir))
        self._state: Path | None = None
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) read last
        self._regions: dict[str, Region] = {}
        self._open: dict[str, tuple[Region, int]] = {}  # name -> (region, fd) in this process

    def attach(self, state_file: Path, fresh: bool) -> None:
        """Use ``state_file``; ``fresh`` (the gateway's first process) starts it empty."""
        self._state = state_file
        if fresh:
            self._save({})

    def detach(self, remove: bool) -> None:
        """Close every object; ``remove`` (the first process, at stop) deletes the state."""
        for _region, fd in self._open.values():
            os.close(fd)
        self._open.clear()
        if remove and self._state is not None:
            for path in (self._state, self._state.with_suffix(".lock")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def register(self, name: str, key: str, offset: int, byte_size: int, owner: Owner) -> Region:
        if not name:
            raise InvalidInput("a shared-memory region needs a name", "name")
        if not _KEY.fullmatch(key) or set(key[1:]) == {"."}:
            raise InvalidInput(
                f"shared-memory key {key!r} is not a POSIX shared-memory name: use one "
                "slash and a file name, e.g. /camera0 (the object /dev/shm/camera0)",
                "key",
            )
        if byte_size <= 0:
            raise InvalidInput("byte_size must be positive", "byte_size")
        region = Region(name, key, offset, byte_size, owner.credential, owner.uid)
        fd = self._open_object(region)  # checks existence, owner, access and size first
        os.close(fd)
        with self._locked():
            regions = dict(self._load(locked=True))  # the cache changes only by re-reading
            if name in regions:
                known = regions[name]
                whose = f"key {known.key}" if known.owner == owner.credential else "another app"
                raise RegionExists(
                    f"shared-memory region {name!r} is already registered ({whose}); "
                    "unregister it first or pick another name"
                )
            if len(regions) >= self._max_regions:
                raise QuotaExceeded(
                    f"{len(regions)} shared-memory regions are registered, the limit "
                    f"(--shared-memory-max-regions); unregister unused ones"
                )
            regions[name] = region
            self._save(regions)
        return region

    def unregister(self, name: str, owner: Owner) -> None:
        """Forget one region, or every region of ``owner`` for an empty name (the
        management token: every region); unknown names are a no-op."""
        with self._locked():
            regions = self._load(locked=True)
            if name and name in regions and not _sees(owner, regions[name]):
                raise AccessDenied(
                    f"shared-memory region {name!r} was registered by another app; only "
                    "its own credential (or the management token) can unregister it"
                )
            # An empty name keeps other apps' regions; a name keeps every other region.
            kept = {
                key: region
                for key, region in regions.items()
                if (key != name if name else not _sees(owner, region))
            }
            self._save(kept)

    def status(self, name: str, owner: Owner) -> list[Region]:
        """``owner``'s regions (the management token: every region)."""
        regions = {key: region for key, region in self._load().items() if _sees(owner, region)}
        if not name:
            return sorted(regions.values(), key=lambda region: region.name)
        if name not in regions:
            raise RegionNotFound(f"shared-memory region {name!r} is not registered")
        return [regions[name]]

    def read(self, name: str, offset: int, byte_size: int, where: str, owner: Owner) -> bytes:
        """``byte_size`` bytes at ``offset`` within the region ``name``."""
        region, fd = self._lookup(name, offset, byte_size, where, owner)
        data = os.pread(fd, byte_size, region.offset + offset)
        if len(data) != byte_size:
            raise InvalidInput(
                f"{where}: shared-memory object {region.key} ended after {len(data)} of "
                f"{byte_size} bytes (it shrank after registration)",
                where,
            )
        return data

    def write(
        self, name: str, offset: int, byte_size: int, data: bytes, where: str, owner: Owner
    ) -> None:
        """Put ``data`` at ``offset`` within the region; it must fit in ``byte_size``."""
        if len(data) > byte_size:
            raise InvalidInput(
                f"{where}: the output is {len(data)} bytes but its shared-memory region "
                f"allows {byte_size}; register a larger region",
                where,
            )
        region, fd = self._lookup(name, offset, byte_size, where, owner)
        written = os.pwrite(fd, data, region.offset + offset)
        if written != len(data):
            raise InvalidInput(f"{where}: wrote {written} of {len(data)} bytes to {region.key}")

    def _lookup(
        self, name: str, offset: int, byte_size: int, where: str, owner: Owner
    ) -> tuple[Region, int]:
        region = self._load().get(name)
        if region is None:
            raise RegionNotFound(
                f"{where}: shared-memory region {name!r} is not registered; register it "
                "with SystemSharedMemoryRegister first"
            )
        # Not even the management token: its calls use the regions it registered itself.
        if region.owner != owner.credential:
            raise AccessDenied(
                f"{where}: shared-memory region {name!r} was registered with another "
                "credential; a call reads and writes only regions registered with the "
                "credential it carries"
            )
        if offset < 0 or byte_size < 0 or offset + byte_size > region.byte_size:
            raise InvalidInput(
                f"{where}: {byte_size} bytes at offset {offset} do not fit in shared-memory "
                f"region {name!r} ({region.byte_size} bytes)",
                where,
            )
        opened = self._open.get(name)
        if opened is None or opened[0] != region:
            if opened is not None:
                os.close(opened[1])
            opened = self._open[name] = (region, self._open_object(region))
        return opened

    def _open_object(self, region: Region) -> int:
        """The object's descriptor, after every check made on the descriptor itself."""
        path = self._shm_dir / region.key[1:]
        # A symlink is followed here only to say where it points; the open below refuses
        # one (O_NOFOLLOW), so a link swapped in after this check is refused too.
        resolved = Path(os.path.realpath(path))
        if resolved.parent != self._shm_dir:
            raise AccessDenied(
                f"shared-memory object {region.key} resolves to {resolved}, outside "
                f"{self._shm_dir}: only objects in {self._shm_dir} can be registered"
            )
        self._refuse_gateway_name(region.key, resolved.name)
        try:
            fd = os.open(resolved, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RegionNotFound(
                f"no shared-memory object {region.key} (looked for {path}): create it "
                "(shm_open) before registering it"
            ) from None
        except OSError as exc:  # EACCES, ELOOP (a symlink), ...
            raise AccessDenied(
                f"the gateway cannot open shared-memory object {region.key} for reading "
                f"and writing: {exc.strerror}"
            ) from None
        try:
            self._check_opened(region, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _refuse_gateway_name(self, key: str, name: str) -> None:
        if _GATEWAY_FILE.fullmatch(name):
            raise AccessDenied(
                f"shared-memory object {key} is a gateway's own file ({name}), not an "
                "app's object: it cannot be registered"
            )

    def _check_opened(self, region: Region, info: os.stat_result) -> None:
        """Checks on the opened descriptor (fstat): no window between check and use."""
        if not stat.S_ISREG(info.st_mode):
            raise AccessDenied(f"shared-memory object {region.key} is not a regular file")
        if (info.st_dev, info.st_ino) in self._own_files() or info.st_nlink != 1:
            raise AccessDenied(
                f"shared-memory object {region.key} is the gateway's own file or another "
                "name for a file (a hard link): only objects made by shm_open can be registered"
            )
        if info.st_uid != region.uid:
            raise AccessDenied(
                f"shared-memory object {region.key} belongs to uid {info.st_uid}, but the "
                f"credential of this call is bound to uid {region.uid}: an app registers "
                "only objects its own user created"
            )
        if info.st_size < region.offset + region.byte_size:
            raise InvalidInput(
                f"shared-memory object {region.key} holds {info.st_size} bytes; region "
                f"{region.name!r} needs offset {region.offset} + {region.byte_size} bytes",
                "byte_size",
            )

    def _own_files(self) -> set[tuple[int, int]]:
        """(device, inode) of this gateway's state and lock files as they are now."""
        found = set()
        for path in () if self._state is None else (self._state, self._state.with_suffix(".lock")):
            with contextlib.suppress(OSError):
                info = os.stat(path)
                found.add((info.st_dev, info.st_ino))
        return found

    def _load(self, locked: bool = False) -> dict[str, Region]:
        """The registrations, re-read only when another process changed the state file;
        ``locked``: the caller holds the lock."""
        if self._state is None:
            return {}
        try:
            info = os.stat(self._state)
        except FileNotFoundError:
            self._regions, self._seen = {}, None
            return self._regions
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            try:
                self._regions = _parse_state(self._state.read_text(encoding="utf-8"))
                self._seen = seen
            except ValueError as exc:
                self._regions = self._recover(locked, exc)
            for gone in [name for name in self._open if name not in self._regions]:
                os.close(self._open.pop(gone)[1])
        return self._regions

    def _recover(self, locked: bool, problem: ValueError) -> dict[str, Region]:
        """A corrupt state file starts over empty (apps register again) rather than
        failing every shared-memory call until the gateway restarts."""
        if not locked:
            with self._locked():
                return self._load(locked=True)  # another process may have rewritten it
        logger.error(
            "shared-memory state %s is corrupt (%s): starting it empty; apps must "
            "register their regions again",
            self._state,
            problem,
        )
        self._save({})
        return {}

    def _save(self, regions: dict[str, Region]) -> None:
        """Write-to-temp and rename: other processes never read half a file."""
        assert self._state is not None
        write_json_atomic(self._state, {name: asdict(region) for name, region in regions.items()})
        self._seen = None  # re-read (and re-stat) on the next lookup

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across the gateway's processes."""
        if self._state is None:
            raise RuntimeError("the shared-memory registry is not attached to a state file")
        with open(self._state.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _sees(owner: Owner, region: Region) -> bool:
    return owner.manages or region.owner == owner.credential


class CallerRegions:
    """The registry as one caller sees it: calls carry the caller's credential."""

    def __init__(self, registry: SharedMemoryRegistry, owner: Owner) -> None:
        self._registry = registry
        self.owner = owner

    def register(self, name: str, key: str, offset: int, byte_size: int) -> Region:
        return self._registry.register(name, key, offset, byte_size, self.owner)

    def unregister(self, name: str) -> None:
        self._registry.unregister(name, self.owner)

    def status(self, name: str) -> list[Region]:
        return self._registry.status(name, self.owner)

    def read(self, name: str, offset: int, byte_size: int, where: str) -> bytes:
        return self._registry.read(name, offset, byte_size, where, self.owner)

    def write(self, name: str, offset: int, byte_size: int, data: bytes, where: str) -> None:
        self._registry.write(name, offset, byte_size, data, where, self.owner)
