"""Build real signed model bundles in tests (bundle writer + Ed25519, no torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.golden import encode_golden
from edge_contracts.bundle.signing import save_keypair, sign_manifest
from edge_contracts.bundle.writer import Payload, build_manifest_bytes, write_bundle

GOLDEN_PATH = "golden/samples.npz"


def make_keys(folder: Path, name: str = "publisher") -> tuple[Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    folder.mkdir(parents=True, exist_ok=True)
    public = folder / f"{name}.pub"
    save_keypair(key, folder / f"{name}.key", public)
    return key, public


def golden_for(model_file: Path, count: int = 3, seed: int = 0) -> tuple[bytes, dict[str, Any]]:
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    shape = [count if not isinstance(d, int) else d for d in spec.shape]
    inputs = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    outputs = session.run(None, {spec.name: inputs})
    names = [o.name for o in session.get_outputs()]
    payload = encode_golden({spec.name: inputs}, dict(zip(names, outputs, strict=True)))
    return payload, {"path": GOLDEN_PATH, "atol": 1e-4, "rtol": 1e-4}


def build_bundle(
    destination: Path,
    model_file: Path | bytes,
    name: str,
    version: str,
    key: Ed25519PrivateKey | None,
    manifest: dict[str, Any] | None = None,
    golden: tuple[bytes, dict[str, Any]] | None = None,
) -> Path:
    document: dict[str, Any] = {"name": name, "version": version, **(manifest or {})}
    payloads: dict[str, Payload] = {"model.onnx": model_file}
    if golden is not None:
        payloads[GOLDEN_PATH] = golden[0]
        document["golden"] = golden[1]
    manifest_bytes = build_manifest_bytes(document, payloads)
    signature = sign_manifest(manifest_bytes, key).encode() if key is not None else None
    return write_bundle(destination, manifest_bytes, payloads, signature)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CHUNK = 256 * 1024


async def push(
    stub: Any,
    bundle: Path,
    mode: int = 1,
    *,
    stop_after_bytes: int | None = None,
    corrupt_at: int | None = None,
    declared_sha: str | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
    chunk_size: int = CHUNK,
    identity: tuple[str, str] | None = None,
    allow_older: bool = False,
) -> tuple[list[Any], int]:
    """Push ``bundle`` over ModelUpdate; returns (responses, bytes this call sent).

    ``stop_after_bytes`` ends the stream early (no commit), as a broken link would;
    ``corrupt_at`` flips one byte in transit; ``identity`` (name, version) goes in the
    header instead of the bundle's own (for bundles whose manifest cannot be read);
    ``allow_older`` asks for a deliberate rollback past the signed sequence.
    """
    from edge_contracts.proto.edge.v1 import model_pb2

    data = bytearray(bundle.read_bytes())
    manifest = identity or _bundle_name_version(bundle)
    header = model_pb2.ModelUpdateHeader(
        model_name=manifest[0],
        model_version=manifest[1],
        bundle_size=len(data),
        bundle_sha256=declared_sha or hashlib.sha256(data).hexdigest(),
        activation_mode=mode,
        source="test",
        allow_older=allow_older,
    )
    if corrupt_at is not None:
        data[corrupt_at] ^= 0xFF
    responses: list[Any] = []
    sent = 0
    call = stub.ModelUpdate(metadata=metadata or None)
    await call.write(model_pb2.ModelUpdateRequest(header=header))
    first = await call.read()
    responses.append(first)
    if first.stage != model_pb2.UPDATE_STAGE_RECEIVING:
        await call.done_writing()
        responses.extend([r async for r in _rest(call)])
        return responses, sent
    offset = first.resume_offset
    while offset < len(data):
        if stop_after_bytes is not None and sent >= stop_after_bytes:
            call.cancel()
            return responses, sent
        piece = bytes(data[offset : offset + chunk_size])
        await call.write(
            model_pb2.ModelUpdateRequest(
                chunk=model_pb2.ModelUpdateChunk(offset=offset, data=piece)
            )
        )
        responses.append(await call.read())
        offset += len(piece)
        sent += len(piece)
    await call.write(model_pb2.ModelUpdateRequest(commit=model_pb2.ModelUpdateCommit()))
    await call.done_writing()
    responses.extend([r async for r in _rest(call)])
    return responses, sent


async def _rest(call: Any) -> Any:
    import grpc

    while True:
        message = await call.read()
        if message is grpc.aio.EOF:
            return
        yield message


def _bundle_name_version(bundle: Path) -> tuple[str, str]:
    import json
    import tarfile

    with tarfile.open(bundle) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        document = json.loads(member.read())
    return document["name"], document["version"]
