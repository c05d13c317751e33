"""Golden samples: a few inputs with the outputs the signed model must reproduce.

``golden/samples.npz`` holds arrays ``in.<input name>`` and ``out.<output name>``
(batch first). The manifest's ``golden`` block names them and the tolerances; a
gateway runs the inputs through the freshly loaded model and refuses to activate
it when any output differs by more than ``atol + rtol * |expected|``.

A signature proves who built a bundle, not that the build pipeline was sound, so
the samples are read as untrusted data: the zip directory and every ``.npy``
header are checked against the limits below before any array is allocated, and
each array is read through a reader that stops at the size its header declares.
"""

from __future__ import annotations

import io
import math
import struct
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from edge_contracts.bundle.format import golden_key
from edge_contracts.errors import BundleError

__all__ = [
    "GOLDEN_BATCH_ROWS",
    "MAX_GOLDEN_ARRAYS",
    "MAX_GOLDEN_ARRAY_BYTES",
    "MAX_GOLDEN_FILE_BYTES",
    "MAX_GOLDEN_SAMPLES",
    "MAX_GOLDEN_TOTAL_BYTES",
    "GoldenSamples",
    "compare_golden",
    "encode_golden",
    "golden_batches",
    "load_golden",
]

MAX_GOLDEN_FILE_BYTES = 64 << 20  # golden/samples.npz as stored in the bundle
MAX_GOLDEN_SAMPLES = 256  # rows (first dimension) of each input array
MAX_GOLDEN_ARRAY_BYTES = 32 << 20  # one array, decompressed (.npy header included)
MAX_GOLDEN_TOTAL_BYTES = 64 << 20  # all arrays together, decompressed
MAX_GOLDEN_ARRAYS = 64
GOLDEN_BATCH_ROWS = 8  # rows per session.run when the model's batch axis is dynamic
_MAX_NPY_HEADER = 10_000  # numpy's own default bound on a header's length
_MAX_DIRECTORY_BYTES = 64 << 10
_EOCD = struct.Struct("<4s4H2LH")  # zip end-of-central-directory record
_CHUNK = 1 << 20
_KINDS = "biufc"  # bool, integers, floats, complex: never objects or records
_NPY_LOCK = threading.Lock()


@dataclass(frozen=True)
class GoldenSamples:
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]
    atol: float
    rtol: float


def _check_sizes(arrays: Mapping[str, np.ndarray]) -> None:
    total = 0
    for name, array in arrays.items():
        if array.nbytes > MAX_GOLDEN_ARRAY_BYTES:
            raise BundleError(
                f"golden array {name!r} is {array.nbytes} bytes, the limit is "
                f"{MAX_GOLDEN_ARRAY_BYTES}; use fewer or smaller samples"
            )
        total += array.nbytes
        if name.startswith("in.") and array.ndim and len(array) > MAX_GOLDEN_SAMPLES:
            raise BundleError(
                f"golden array {name!r} has {len(array)} samples, the limit is {MAX_GOLDEN_SAMPLES}"
            )
    if total > MAX_GOLDEN_TOTAL_BYTES:
        raise BundleError(
            f"golden samples are {total} bytes, the limit is {MAX_GOLDEN_TOTAL_BYTES}; "
            "use fewer or smaller samples"
        )


def encode_golden(inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of golden/samples.npz (uncompressed, deterministic member order).

    Refuses samples a gateway would refuse (the MAX_GOLDEN_* limits above)."""
    arrays = {golden_key("in", k): np.asarray(v) for k, v in sorted(inputs.items())}
    arrays.update({golden_key("out", k): np.asarray(v) for k, v in sorted(outputs.items())})
    _check_sizes(arrays)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def _check_directory(handle: IO[bytes], size: int) -> None:
    """Bound the zip's central directory before zipfile parses it into objects."""
    tail_size = min(size, _EOCD.size + 0xFFFF)
    handle.seek(size - tail_size)
    tail = handle.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        raise BundleError("golden samples must be an .npz archive (no zip directory)")
    _sig, _disk, _cd_disk, _here, entries, directory, _offset, _comment = _EOCD.unpack_from(
        tail, at
    )
    if entries > MAX_GOLDEN_ARRAYS or directory > _MAX_DIRECTORY_BYTES:
        raise BundleError(
            f"golden samples hold {entries} arrays in a {directory}-byte zip directory; "
            f"the limit is {MAX_GOLDEN_ARRAYS} arrays"
        )


def _check_members(infos: list[zipfile.ZipInfo]) -> None:
    total = 0
    names = set()
    for info in infos:
        if not info.filename.endswith(".npy") or info.filename in names:
            raise BundleError(f"golden member {info.filename!r} is not a unique .npy array")
        names.add(info.filename)
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleError(f"golden member {info.filename!r}: use stored or deflated members")
        if info.flag_bits & 0x1:
            raise BundleError(f"golden member {info.filename!r} is encrypted")
        if info.file_size > MAX_GOLDEN_ARRAY_BYTES:
            raise BundleError(
                f"golden array {info.filename!r} decompresses to {info.file_size} bytes, "
                f"the limit is {MAX_GOLDEN_ARRAY_BYTES}"
            )
        total += info.file_size
    if total > MAX_GOLDEN_TOTAL_BYTES:
        raise BundleError(
            f"golden samples decompress to {total} bytes, the limit is {MAX_GOLDEN_TOTAL_BYTES}"
        )


class _Bounded(io.RawIOBase):
    """Reads at most ``limit`` bytes of ``raw``, and counts them."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self.left = limit
        self.used = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = self.left if size is None or size < 0 else min(size, self.left)
        data = self._raw.read(want)
        self.left -= len(data)
        self.used += len(data)
        return data


def _npy_header(stream: _Bounded, name: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream, max_header_size=_MAX_NPY_HEADER)
    elif version in ((2, 0), (3, 0)):
        header = np.lib.format.read_array_header_2_0(stream, max_header_size=_MAX_NPY_HEADER)
    else:
        raise BundleError(f"golden array {name!r}: .npy format version {version} is unknown")
    shape, fortran, dtype = header
    if dtype.kind not in _KINDS or any(d < 0 for d in shape):
        raise BundleError(f"golden array {name!r} must hold numbers, not {dtype}")
    return tuple(shape), bool(fortran), dtype


def _read_data(stream: _Bounded, count: int, dtype: np.dtype[Any]) -> np.ndarray:
    array = np.empty(count, dtype)
    target = array.view(np.uint8).reshape(-1)
    filled = 0
    while filled < array.nbytes:
        chunk = stream.read(min(_CHUNK, array.nbytes - filled))
        if not chunk:
            raise BundleError("golden array ends early")
        target[filled : filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
        filled += len(chunk)
    return array


def _read_array(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple[int, ...], Any]:
    """(shape, reader): the header is checked now, the data read only when called."""
    name = info.filename[: -len(".npy")]
    with archive.open(info) as raw:
        head = _Bounded(raw, min(info.file_size, _MAX_NPY_HEADER + 16))
        shape, fortran, dtype = _npy_header(head, name)
    declared = head.used + math.prod(shape) * dtype.itemsize
    if declared != info.file_size:
        raise BundleError(
            f"golden array {name!r}: its .npy header declares {declared} bytes "
            f"({dtype}{list(shape)}) but the archive holds {info.file_size}"
        )

    def read() -> np.ndarray:
        with archive.open(info) as raw:
            stream = _Bounded(raw, info.file_size)
            stream.read(head.used)
            flat = _read_data(stream, math.prod(shape), dtype)
        return flat.reshape(shape, order="F" if fortran else "C")

    return shape, read


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as handle:
        _check_directory(handle, path.stat().st_size)
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            _check_members(infos)
            readers = {info.filename[:-4]: _read_array(archive, info) for info in infos}
            for name, (shape, _read) in readers.items():
                rows = shape[0] if shape else 1
                if name.startswith("in.") and rows > MAX_GOLDEN_SAMPLES:
                    raise BundleError(
                        f"golden array {name!r} has {rows} samples, the limit is "
                        f"{MAX_GOLDEN_SAMPLES}"
                    )
            return {name: read() for name, (_shape, read) in readers.items()}


def load_golden(path: Path, description: Mapping[str, Any]) -> GoldenSamples:
    """Read golden samples from an extracted bundle folder's file ``path``.

    Every limit is checked from the zip directory and the .npy headers before an
    array is allocated; at most MAX_GOLDEN_TOTAL_BYTES are ever read."""
    try:
        if path.stat().st_size > MAX_GOLDEN_FILE_BYTES:
            raise BundleError(f"{path} is larger than {MAX_GOLDEN_FILE_BYTES} bytes")
        if not zipfile.is_zipfile(path):  # else numpy tries pickle and suggests allow_pickle
            raise BundleError(f"{path}: golden samples must be an .npz archive")
        # One reader at a time: numpy parses .npy headers with ast.literal_eval, which
        # CPython 3.11.7 can corrupt when two threads compile at once (gh-106905).
        with _NPY_LOCK:
            arrays = _read_arrays(path)
    except BundleError as exc:
        message = str(exc)
        raise BundleError(message if str(path) in message else f"{path}: {message}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: unreadable golden samples ({exc})") from None
    inputs = {k[3:]: v for k, v in arrays.items() if k.startswith("in.")}
    outputs = {k[4:]: v for k, v in arrays.items() if k.startswith("out.")}
    if not inputs or not outputs:
        raise BundleError(f"{path}: golden samples need 'in.*' and 'out.*' arrays")
    try:
        atol = float(description.get("atol", 1e-3))
        rtol = float(description.get("rtol", 1e-3))
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float
        raise BundleError("golden atol/rtol must be numbers") from None
    if not (math.isfinite(atol) and math.isfinite(rtol)) or atol < 0 or rtol < 0:
        raise BundleError(f"golden atol/rtol must be finite and >= 0, got {atol}, {rtol}")
    return GoldenSamples(inputs, outputs, atol, rtol)


def golden_batches(golden: GoldenSamples, rows: int) -> Iterator[tuple[int, GoldenSamples]]:
    """(first row, samples) in slices of ``rows`` rows, views of the arrays.

    One slice holding everything when the arrays do not all share a first dimension
    (a sample file that is not batch-first can only be checked whole)."""
    arrays = [*golden.inputs.values(), *golden.outputs.values()]
    lengths = {a.shape[0] if a.ndim else -1 for a in arrays}
    if len(lengths) != 1 or -1 in lengths or rows <= 0:
        yield 0, golden
        return
    total = lengths.pop()
    for start in range(0, max(total, 1), rows):
        part = slice(start, start + rows)
        yield (
            start,
            GoldenSamples(
                {k: v[part] for k, v in golden.inputs.items()},
                {k: v[part] for k, v in golden.outputs.items()},
                golden.atol,
                golden.rtol,
            ),
        )


def compare_golden(golden: GoldenSamples, actual: Mapping[str, np.ndarray]) -> list[str]:
    """Human-readable mismatches between actual and expected outputs (empty = pass)."""
    problems: list[str] = []
    for name, expected in golden.outputs.items():
        got = actual.get(name)
        if got is None:
            problems.append(f"output {name!r} missing")
            continue
        got = np.asarray(got)
        if got.shape != expected.shape:
            problems.append(
                f"output {name!r} has shape {list(got.shape)}, expected {list(expected.shape)}"
            )
            continue
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        bound = golden.atol + golden.rtol * np.abs(expected.astype(np.float64))
        if np.any(diff > bound):
            problems.append(f"output {name!r} differs by up to {float(diff.max()):.3g}")
    return problems
