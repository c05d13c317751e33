"""Hostile bundle parts, built small: a deflate bomb npz, a lying .npy header, tar members
of every kind a bundle must refuse, deeply nested JSON; and reading a process's peak RSS."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

_MIB = 1 << 20


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """The bytes of a .npy file up to its data, for an array of ``shape``."""
    buffer = io.BytesIO()
    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)  # type: ignore[no-untyped-call]
    return buffer.getvalue()


def _zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of pre-deflated members: (name, deflated bytes, crc32, size, method)."""
    body = io.BytesIO()
    directory = io.BytesIO()
    for name, data, crc, size, method in members:
        encoded = name.encode()
        offset = body.tell()
        fields = (20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0)
        body.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields) + encoded + data)
        central = (20, 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0, 0, 0, 0, 0)
        directory.write(struct.pack("<4s6H3L5HLL", b"PK\x01\x02", *central, offset) + encoded)
    listing = directory.getvalue()
    count = len(members)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(listing), body.tell(), 0)
    return body.getvalue() + listing + end


def zeros_npz(
    mebibytes: int, row_shape: tuple[int, ...] = (1, 8, 8), extra_out: bool = True
) -> bytes:
    """An npz whose ``in.input`` is ``mebibytes`` MiB of float32 zeros (deflated about
    1000:1, built without ever holding the array), plus a small ``out.logits``."""
    row_bytes = 4 * int(np.prod(row_shape))
    rows = mebibytes * _MIB // row_bytes
    header = npy_header((rows, *row_shape))
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = packer.compress(header) + packer.flush(zlib.Z_FULL_FLUSH)
    # After a full flush the compressor has forgotten its history, so one MiB of zeros
    # always deflates to these same bytes: repeat them instead of compressing 1 GiB.
    block = packer.compress(bytes(_MIB)) + packer.flush(zlib.Z_FULL_FLUSH)
    deflated = start + block * mebibytes + packer.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    zero_block = bytes(_MIB)
    for _ in range(mebibytes):
        crc = zlib.crc32(zero_block, crc)
    size = len(header) + rows * row_bytes
    assert size == len(header) + mebibytes * _MIB, "row_shape must divide a MiB"
    members = [("in.input.npy", deflated, crc, size, zipfile.ZIP_DEFLATED)]
    if extra_out:
        out = _small_npy(np.zeros((1, 10), np.float32))
        members.append(("out.logits.npy", out, zlib.crc32(out), len(out), zipfile.ZIP_STORED))
    return _zip(members)


def _small_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def lying_npz(claimed_rows: int = 1 << 22) -> bytes:
    """An npz whose ``in.input`` header claims ``claimed_rows`` rows of [1, 8, 8] float32
    (1 GiB by default) while the member holds 256 bytes of data."""
    data = npy_header((claimed_rows, 1, 8, 8)) + bytes(256)
    out = _small_npy(np.zeros((1, 10), np.float32))
    return _zip(
        [
            ("in.input.npy", data, zlib.crc32(data), len(data), zipfile.ZIP_STORED),
            ("out.logits.npy", out, zlib.crc32(out), len(out), zipfile.ZIP_STORED),
        ]
    )


def _block(data: bytes) -> bytes:
    return data + bytes(-len(data) % tarfile.BLOCKSIZE)


def regular_member(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info.tobuf(tarfile.GNU_FORMAT) + _block(data)


def sparse_member(name: str, real_size: int, stored: bytes = b"\0" * 512) -> bytes:
    """An old-GNU sparse member (type ``S``): ``stored`` at offset 0, then a hole up to
    ``real_size``; tarfile expands it to ``real_size`` bytes on reading."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    info.size = len(stored)
    info.mode = 0o644
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:410] = b"%011o\0%011o\0" % (0, len(stored))
    header[483:495] = b"%011o\0" % real_size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + _block(stored)


def special_member(name: str, kind: bytes, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info.tobuf(tarfile.GNU_FORMAT)


def pax_sparse_member(name: str, real_size: int) -> bytes:
    """A PAX member whose GNU.sparse.* (format 0.1) keys make tarfile expand it."""
    info = tarfile.TarInfo(name)
    info.size = 512
    info.pax_headers = {"GNU.sparse.map": "0,512", "GNU.sparse.size": str(real_size)}
    return info.tobuf(tarfile.PAX_FORMAT) + bytes(512)


def tar_of(*members: bytes) -> bytes:
    """Members as ``*_member`` built them, then the end-of-archive blocks."""
    return b"".join(members) + bytes(2 * tarfile.BLOCKSIZE)


def nested_json(depth: int) -> bytes:
    return b'{"a": ' * depth + b"1" + b"}" * depth


def peak_rss_bytes(pid: int | str = "self") -> int:
    """VmHWM of a process: its peak resident set since start or the last reset."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def reset_peak_rss() -> None:
    """Reset this process's VmHWM to its current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")
