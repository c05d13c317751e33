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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
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

# shm_open names: one leading slash, then a file name in /dev/shm.
_KEY = re.compile(r"/[A-Za-z0-9_.-]{1,200}")
SHM_DIR = Path("/dev/shm")


@dataclass(frozen=True)
class Region:
    name: str
    key: str
    offset: int
    byte_size: int


def state_file_for(host: str, port: int) -> Path:
    """Where the gateway listening on host:port keeps its registrations."""
    folder = SHM_DIR if SHM_DIR.is_dir() else Path(tempfile.gettempdir())
    safe_host = re.sub(r"[^A-Za-z0-9.-]", "_", host)
    return folder / f"edge-gateway-{safe_host}-{port}.shm-regions.json"


class SharedMemoryRegistry:
    def __init__(self, max_regions: int, shm_dir: Path = SHM_DIR) -> None:
        self._max_regions = max_regions
        self._shm_dir = shm_dir
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

    def register(self, name: str, key: str, offset: int, byte_size: int) -> Region:
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
        region = Region(name, key, offset, byte_size)
        fd = self._open_object(region)  # checks existence, access and size first
        os.close(fd)
        with self._locked():
            regions = dict(self._load())  # the cache changes only by re-reading the file
            if name in regions:
                raise RegionExists(
                    f"shared-memory region {name!r} is already registered (key "
                    f"{regions[name].key}); unregister it first or pick another name"
                )
            if len(regions) >= self._max_regions:
                raise QuotaExceeded(
                    f"{len(regions)} shared-memory regions are registered, the limit "
                    f"(--shared-memory-max-regions); unregister unused ones"
                )
            regions[name] = region
            self._save(regions)
        return region

    def unregister(self, name: str) -> None:
        """Forget one region, or every region for an empty name (unknown names: no-op)."""
        with self._locked():
            # An empty name keeps nothing; a name keeps every other region.
            regions = {key: value for key, value in self._load().items() if name and key != name}
            self._save(regions)

    def status(self, name: str) -> list[Region]:
        regions = self._load()
        if not name:
            return sorted(regions.values(), key=lambda region: region.name)
        if name not in regions:
            raise RegionNotFound(f"shared-memory region {name!r} is not registered")
        return [regions[name]]

    def read(self, name: str, offset: int, byte_size: int, where: str) -> bytes:
        """``byte_size`` bytes at ``offset`` within the region ``name``."""
        region, fd = self._lookup(name, offset, byte_size, where)
        data = os.pread(fd, byte_size, region.offset + offset)
        if len(data) != byte_size:
            raise InvalidInput(
                f"{where}: shared-memory object {region.key} ended after {len(data)} of "
                f"{byte_size} bytes (it shrank after registration)",
                where,
            )
        return data

    def write(self, name: str, offset: int, byte_size: int, data: bytes, where: str) -> None:
        """Put ``data`` at ``offset`` within the region; it must fit in ``byte_size``."""
        if len(data) > byte_size:
            raise InvalidInput(
                f"{where}: the output is {len(data)} bytes but its shared-memory region "
                f"allows {byte_size}; register a larger region",
                where,
            )
        region, fd = self._lookup(name, offset, byte_size, where)
        written = os.pwrite(fd, data, region.offset + offset)
        if written != len(data):
            raise InvalidInput(f"{where}: wrote {written} of {len(data)} bytes to {region.key}")

    def _lookup(self, name: str, offset: int, byte_size: int, where: str) -> tuple[Region, int]:
        region = self._load().get(name)
        if region is None:
            raise RegionNotFound(
                f"{where}: shared-memory region {name!r} is not registered; register it "
                "with SystemSharedMemoryRegister first"
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
        path = self._shm_dir / region.key[1:]
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
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
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size < region.offset + region.byte_size:
            os.close(fd)
            raise InvalidInput(
                f"shared-memory object {region.key} holds {info.st_size} bytes; region "
                f"{region.name!r} needs offset {region.offset} + {region.byte_size} bytes",
                "byte_size",
            )
        return fd

    def _load(self) -> dict[str, Region]:
        """The registrations, re-read only when another process changed the state file."""
        if self._state is None:
            return {}
        try:
            info = os.stat(self._state)
        except FileNotFoundError:
            self._regions, self._seen = {}, None
            return self._regions
        seen = (info.st_ino, info.st_mtime_ns, info.st_size)
        if seen != self._seen:
            entries = json.loads(self._state.read_text(encoding="utf-8") or "{}")
            self._regions = {name: Region(**fields) for name, fields in entries.items()}
            self._seen = seen
            for gone in [name for name in self._open if name not in self._regions]:
                os.close(self._open.pop(gone)[1])
        return self._regions

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
