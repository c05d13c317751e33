"""Building model bundles (format in docs/bundle-format.md).

The format itself (reader, verifier, writer) lives in ``edge_contracts.bundle`` so the
gateway and the orchestrator share it; this module gathers what goes in: the
ONNX model, its manifest with signature and evaluation, and golden samples.
Keys and re-signing (``keygen``, ``sign_bundle``, re-exported here) live in
``model_tools.bundle_keys``, which needs no package of the tools extra.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_contracts.bundle.format import GOLDEN_FILE, MODEL_FILE
from edge_contracts.bundle.golden import encode_golden
from edge_contracts.bundle.signing import load_private_key, sign_manifest
from edge_contracts.bundle.writer import Payload, build_manifest_bytes, write_bundle
from model_tools.bundle_keys import keygen, sign_bundle
from model_tools.errors import ToolError, error_summary
from model_tools.graph_stats import is_quantized
from model_tools.manifest_io import find_manifest, producer_info
from model_tools.onnx_model import fixed_batch_size, graph_signature, load_onnx
from model_tools.sessions import open_session
from model_tools.trust_tools import targets_signature

__all__ = [
    "PackageResult",
    "golden_count",
    "keygen",
    "package_model",
    "sign_bundle",
    "utc_timestamp",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageResult:
    path: Path
    name: str
    version: str
    key_id: str | None
    files: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "version": self.version,
            "signed_by": self.key_id,
            "files": self.files,
            "size": self.path.stat().st_size,
        }


def utc_timestamp() -> str:
    """Now in ISO 8601 UTC, or SOURCE_DATE_EPOCH when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def golden_count(model: Path, requested: int) -> int:
    """How many golden samples ``model`` gets: ``requested``, or B for a fixed batch of B.

    The gateway replays the samples in one run, so a model exported with a fixed
    batch axis can only check exactly one batch.
    """
    inputs, _ = graph_signature(load_onnx(model, load_weights=False))
    return fixed_batch_size(inputs[0]) or requested


def _fit_batch(inputs: np.ndarray, batch: int | None) -> np.ndarray:
    if batch is None or len(inputs) == batch:
        return inputs
    if len(inputs) < batch:
        raise ToolError(
            f"the model takes batches of exactly {batch}; give at least {batch} golden inputs"
        )
    _log.info("fixed batch size %d: keeping %d of %d golden inputs", batch, batch, len(inputs))
    return inputs[:batch]


def _golden(model: Path, inputs: np.ndarray, atol: float | None) -> tuple[bytes, dict[str, Any]]:
    session = open_session(model)
    name = session.get_inputs()[0].name
    try:
        results = session.run(None, {name: inputs})
    except Exception as exc:
        raise ToolError(f"golden inputs do not run through {model}: {error_summary(exc)}") from None
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, (np.asarray(r) for r in results), strict=True))
    tolerance = atol if atol is not None else (5e-2 if is_quantized(load_onnx(model)) else 1e-3)
    description: dict[str, Any] = {
        "path": GOLDEN_FILE,
        "count": len(inputs),
        "inputs": [name],
        "outputs": names,
        "atol": tolerance,
        "rtol": tolerance,
    }
    first = outputs[names[0]]
    if first.ndim == 2:
        description["expected_top1"] = [int(i) for i in np.argmax(first, axis=1)]
    return encode_golden({name: inputs}, outputs), description


def package_model(
    model: Path,
    output: Path,
    *,
    signing_key: Path | None = None,
    manifest_path: Path | None = None,
    name: str | None = None,
    version: str | None = None,
    golden_inputs: np.ndarray | None = None,
    golden_atol: float | None = None,
    evaluation: dict[str, Any] | None = None,
    breaking_change: bool = False,
    created_at: str | None = None,
    sequence: int | None = None,
    expires_in_days: int = 90,
    keyring: Path | None = None,
) -> PackageResult:
    """Write a bundle for ``model``; signed when ``signing_key`` is given, with signed
    targets metadata (``sequence``, expiry, optionally the keyring) when ``sequence`` is."""
    proto = load_onnx(model)
    manifest = find_manifest(model, manifest_path)
    document: dict[str, Any] = dict(manifest) if manifest else {}
    document["name"] = name or document.get("name") or ""
    document["version"] = version or document.get("version") or ""
    if not document["name"] or not document["version"]:
        raise ToolError(
            f"{model} has no manifest with a name and version; pass --name and --version"
        )
    inputs, outputs = graph_signature(proto)
    document["inputs"] = [s.to_dict() for s in inputs]
    document["outputs"] = [s.to_dict() for s in outputs]
    document.setdefault("output_kind", "logits")
    document.setdefault("labels", [])
    document["producer"] = producer_info("model-tools package")
    document["created_at"] = created_at or utc_timestamp()
    document["breaking_change"] = breaking_change
    if evaluation is not None:
        document["evaluation"] = evaluation
    for key in ("files", "format_version", "golden"):
        document.pop(key, None)
    payloads: dict[str, Payload] = {MODEL_FILE: model}
    if golden_inputs is not None:
        golden_inputs = _fit_batch(golden_inputs, fixed_batch_size(inputs[0]))
        payloads[GOLDEN_FILE], document["golden"] = _golden(model, golden_inputs, golden_atol)
    try:
        manifest_bytes = build_manifest_bytes(document, payloads)
    except Exception as exc:
        raise ToolError(f"cannot build the bundle manifest: {exc}") from None
    key_id = None
    signature = None
    if signing_key is not None and sequence is not None:
        key_id, signature = targets_signature(
            manifest_bytes,
            signing_key,
            name=document["name"],
            version=document["version"],
            sequence=sequence,
            expires_in_days=expires_in_days,
            keyring=keyring,
        )
    elif signing_key is not None:
        sig = sign_manifest(manifest_bytes, load_private_key(signing_key))
        key_id, signature = sig.key_id, sig.encode()
    write_bundle(output, manifest_bytes, payloads, signature)
    sizes = {p: (v.stat().st_size if isinstance(v, Path) else len(v)) for p, v in payloads.items()}
    return PackageResult(output, document["name"], document["version"], key_id, sizes)
