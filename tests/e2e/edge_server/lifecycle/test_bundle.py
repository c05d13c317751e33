"""Model bundles: package -> verify -> extract round trip, tampering, unsafe archives, keys."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from edge_contracts.bundle.format import parse_bundle_manifest
from edge_contracts.bundle.golden import compare_golden, load_golden
from edge_contracts.bundle.signing import (
    Signature,
    generate_private_key,
    key_id,
    load_private_key,
    load_public_key,
    save_keypair,
)
from edge_contracts.bundle.verify import extract_verified, read_unverified, verify_bundle
from edge_contracts.bundle.writer import build_manifest_bytes, write_bundle
from edge_contracts.manifest import load_manifest
from edge_server.errors import BundleError, EdgeError, IntegrityError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from model_tools.manifest_io import write_json_atomic  # noqa: E402
from model_tools.packaging import package_model, sign_bundle  # noqa: E402

SERVING = {
    "name": "tiny",
    "version": "3",
    "preprocessing": {"input_size": [4, 4], "color_mode": "L", "mean": [0.5], "std": [0.5]},
    "output_kind": "logits",
    "labels": ["a", "b"],
}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A real ONNX model (flatten + linear layer to 2 classes) with its serving manifest."""
    h = onnx.helper
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.standard_normal((16, 2)).astype(np.float32), "w")
    graph = h.make_graph(
        [
            h.make_node("Flatten", ["input"], ["flat"]),
            h.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "tiny",
        [h.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [h.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 2])],
        [weight],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    folder = tmp_path / "src" / "tiny" / "3"
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    write_json_atomic(folder / "manifest.json", SERVING)
    return folder


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name in ("release", "other"):
        private, public = tmp_path / f"{name}.key", tmp_path / f"{name}.pub"
        save_keypair(generate_private_key(), private, public)
        paths[name], paths[f"{name}.pub"] = private, public
    return paths


def _bundle(model_dir: Path, keys: dict[str, Path], tmp_path: Path, golden: bool = True) -> Path:
    inputs = np.random.default_rng(1).standard_normal((3, 1, 4, 4)).astype(np.float32)
    result = package_model(
        model_dir / "model.onnx",
        tmp_path / "tiny-3.edgebundle",
        signing_key=keys["release"],
        golden_inputs=inputs if golden else None,
        evaluation={"top1": 0.5},
    )
    return result.path


def _trusted(keys: dict[str, Path], *names: str) -> list[object]:
    return [load_public_key(keys[f"{n}.pub"]) for n in names]


def _rewrite(
    bundle: Path, change: dict[str, bytes | None], add: dict[str, bytes] | None = None
) -> None:
    """Rewrite the tar with some members replaced (None = removed) or added."""
    members: list[tuple[str, bytes]] = []
    with tarfile.open(bundle) as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            members.append((member.name, handle.read()))
    with tarfile.open(bundle, "w") as tar:
        for name, original in [*members, *(add or {}).items()]:
            data = change.get(name, original)
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _flip_byte_in_member(bundle: Path, name: str, position: int) -> None:
    with tarfile.open(bundle) as tar:
        offset = tar.getmember(name).offset_data
    with bundle.open("r+b") as handle:
        handle.seek(offset + position)
        byte = handle.read(1)[0]
        handle.seek(offset + position)
        handle.write(bytes([byte ^ 0x01]))


def test_round_trip_package_verify_extract(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(model_dir, keys, tmp_path)
    verified = verify_bundle(bundle, _trusted(keys, "other", "release"))
    assert verified.key_id == key_id(load_public_key(keys["release.pub"]))
    manifest = verified.manifest
    assert (manifest.name, manifest.version, manifest.format_version) == ("tiny", "3", 1)
    assert manifest.breaking_change is False and manifest.created_at.endswith("Z")
    assert manifest.document["evaluation"] == {"top1": 0.5}
    assert manifest.document["inputs"][0]["shape"] == ["batch", 1, 4, 4]
    assert manifest.document["producer"]["tool"] == "model-tools package"
    assert set(manifest.files) == {"model.onnx", "golden/samples.npz"}
    assert read_unverified(bundle).files == manifest.files

    target = tmp_path / "models" / "tiny" / "3"
    extract_verified(bundle, target, _trusted(keys, "release"))
    assert (target / "model.onnx").read_bytes() == (model_dir / "model.onnx").read_bytes()
    serving = load_manifest(target)  # the gateway's own reader accepts the extracted folder
    assert serving.name == "tiny" and serving.labels == ("a", "b")
    assert serving.preprocessing is not None and serving.preprocessing.color_mode == "L"

    assert manifest.golden is not None
    golden = load_golden(target / manifest.golden["path"], manifest.golden)
    session = ort.InferenceSession(str(target / "model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, dict(golden.inputs))
    assert compare_golden(golden, {"logits": logits}) == []
    assert compare_golden(golden, {"logits": logits + 1.0})  # a different model is caught
    with pytest.raises(BundleError, match="already exists"):
        extract_verified(bundle, target, _trusted(keys, "release"))


def test_flipped_byte_in_the_model_is_detected(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(model_dir, keys, tmp_path)
    _flip_byte_in_member(bundle, "model.onnx", 100)
    with pytest.raises(IntegrityError, match=r"model.onnx has sha256 .* the bundle was modified"):
        verify_bundle(bundle, _trusted(keys, "release"))
    with pytest.raises(IntegrityError):
        extract_verified(bundle, tmp_path / "out", _trusted(keys, "release"))
    assert not (tmp_path / "out").exists()


def test_flipped_byte_in_the_manifest_is_detected(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(model_dir, keys, tmp_path)
    with tarfile.open(bundle) as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        text = handle.read().decode()
    _flip_byte_in_member(bundle, "manifest.json", text.index('"tiny"') + 1)
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        verify_bundle(bundle, _trusted(keys, "release"))


def test_signature_from_another_key_is_rejected(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(model_dir, keys, tmp_path)
    other = tmp_path / "other.edgebundle"
    sign_bundle(bundle, keys["other"], other)
    with pytest.raises(IntegrityError, match="not among the trusted keys"):
        verify_bundle(other, _trusted(keys, "release"))
    assert verify_bundle(other, _trusted(keys, "other")).key_id
    # a signature by "other" that claims the trusted key's id
    with tarfile.open(other) as tar:
        handle = tar.extractfile("signature")
        assert handle is not None
        forged = json.loads(handle.read())
    forged["key_id"] = key_id(load_public_key(keys["release.pub"]))
    _rewrite(other, {"signature": json.dumps(forged).encode()})
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        verify_bundle(other, _trusted(keys, "release"))


def test_replaced_model_with_updated_hashes_but_old_signature(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(model_dir, keys, tmp_path, golden=False)
    evil = b"\x08\x07" + b"evil model" * 10
    with tarfile.open(bundle) as tar:
        handle = tar.extractfile("manifest.json")
        assert handle is not None
        document = json.loads(handle.read())
    manifest_bytes = build_manifest_bytes(document, {"model.onnx": evil})
    _rewrite(bundle, {"manifest.json": manifest_bytes, "model.onnx": evil})
    with pytest.raises(IntegrityError, match="does not match the manifest"):
        verify_bundle(bundle, _trusted(keys, "release"))


def test_unsigned_extra_and_missing_members(
    model_dir: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    unsigned = package_model(model_dir / "model.onnx", tmp_path / "u.edgebundle").path
    with pytest.raises(IntegrityError, match="not signed"):
        verify_bundle(unsigned, _trusted(keys, "release"))
    bundle = _bundle(model_dir, keys, tmp_path)
    _rewrite(bundle, {}, add={"extra.bin": b"surprise"})
    with pytest.raises(IntegrityError, match="does not list"):
        verify_bundle(bundle, _trusted(keys, "release"))
    _rewrite(bundle, {"extra.bin": None, "golden/samples.npz": None})
    with pytest.raises(IntegrityError, match=r"lacks 'golden/samples\.npz'"):
        verify_bundle(bundle, _trusted(keys, "release"))
    with pytest.raises(IntegrityError, match="no trusted public keys"):
        verify_bundle(bundle, [])


@pytest.mark.parametrize("name", ["../escape.onnx", "/abs/model.onnx", "a/../../b", "dir\\file"])
def test_unsafe_member_paths_are_refused(tmp_path: Path, name: str) -> None:
    bundle = tmp_path / "evil.tar"
    with tarfile.open(bundle, "w") as tar:
        for member, data in (("manifest.json", b"{}"), (name, b"x")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BundleError, match="not a safe relative path"):
        read_unverified(bundle)


def test_links_compression_and_oversize_are_refused(tmp_path: Path) -> None:
    linked = tmp_path / "link.tar"
    with tarfile.open(linked, "w") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(BundleError, match="not a regular file"):
        read_unverified(linked)
    compressed = tmp_path / "zipped.edgebundle"
    compressed.write_bytes(gzip.compress(linked.read_bytes()))
    with pytest.raises(BundleError, match="not an uncompressed tar"):
        read_unverified(compressed)
    big = tmp_path / "big.tar"
    write_bundle(big, b"{}", {"model.onnx": b"0" * 4096})
    with pytest.raises(BundleError, match="limit"):
        verify_bundle(big, [], max_bytes=1024)
    not_tar = tmp_path / "text.edgebundle"
    not_tar.write_text("hello")
    with pytest.raises(EdgeError):
        read_unverified(not_tar)
    with pytest.raises(BundleError, match="not found"):
        read_unverified(tmp_path / "missing.edgebundle")


def test_manifest_schema_errors() -> None:
    files = {"model.onnx": b"onnx"}
    good = json.loads(build_manifest_bytes(SERVING, files))
    assert good["format_version"] == 1 and good["breaking_change"] is False
    for change, message in (
        ({"name": "../etc"}, "name must be"),
        ({"format_version": 99}, "not supported"),
        ({"files": {"weights.bin": good["files"]["model.onnx"]}}, "must include 'model.onnx'"),
        ({"files": {"model.onnx": {"sha256": "zz", "size": 4}}}, "64 lowercase hex"),
        ({"output_kind": "scores"}, "output_kind"),
        ({"breaking_change": "yes"}, "breaking_change"),
        ({"golden": {"path": "golden/none.npz"}}, "golden"),
    ):
        with pytest.raises(BundleError, match=message):
            parse_bundle_manifest(json.dumps({**good, **change}).encode())
    with pytest.raises(BundleError, match="not valid UTF-8 JSON"):
        parse_bundle_manifest(b"\xff{")


def test_key_formats(tmp_path: Path) -> None:
    key = generate_private_key()
    public = key.public_key()
    raw_private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    formats = {
        "raw.key": raw_private,
        "hex.key": raw_private.hex().encode() + b"\n",
        "raw.pub": raw_public,
        "hex.pub": raw_public.hex().encode(),
        "ssh.pub": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
    }
    for name, data in formats.items():
        (tmp_path / name).write_bytes(data)
    for name in ("raw.key", "hex.key"):
        assert key_id(load_private_key(tmp_path / name).public_key()) == key_id(public)
    for name in ("raw.pub", "hex.pub", "ssh.pub"):
        assert key_id(load_public_key(tmp_path / name)) == key_id(public)
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "rsa.key").write_bytes(rsa_pem)
    with pytest.raises(BundleError, match="not an Ed25519 key"):
        load_private_key(tmp_path / "rsa.key")
    with pytest.raises(BundleError, match="key file not found"):
        load_public_key(tmp_path / "nope.pub")
    (tmp_path / "junk.pub").write_text("junk")
    with pytest.raises(BundleError, match="not an Ed25519 public key"):
        load_public_key(tmp_path / "junk.pub")
    assert Signature("ed25519", "ab", b"x" * 64).encode().startswith(b"{")


def test_bundle_reader_imports_neither_torch_nor_onnx_nor_grpc() -> None:
    code = (
        "import sys, edge_contracts.bundle.verify, edge_contracts.bundle.golden, "
        "edge_contracts.bundle.writer\n"
        "bad = {'torch', 'onnx', 'onnxruntime', 'grpc', 'model_tools'} & set(sys.modules)\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
