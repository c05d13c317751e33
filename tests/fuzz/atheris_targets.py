"""Coverage-guided fuzzing (atheris/libFuzzer) of the bundle reader and the manifest parsers.

Run by ``make fuzz``: ``python -m tests.fuzz.atheris_targets <target> [libFuzzer flags]``,
e.g. ``-max_total_time=60 -rss_limit_mb=1024``. The corpus lives in ``.cache/fuzz/<target>``
(git-ignored), seeded with a valid signed bundle and a valid manifest. A target accepts
only the errors its module documents (BundleError/IntegrityError, ManifestError); any
other exception is a crash that libFuzzer saves as ``crash-<sha1>`` (under
``-artifact_prefix``). Errors already
reported and marked xfail in the property tests are listed in KNOWN so the fuzzer keeps
looking for new ones.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["edge_contracts"]):
    from edge_contracts.bundle.archive import open_archive
    from edge_contracts.bundle.format import parse_bundle_manifest
    from edge_contracts.bundle.signing import decode_signature
    from edge_contracts.errors import BundleError, ManifestError
    from edge_contracts.manifest import load_manifest, parse_manifest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_contracts.bundle.signing import sign_manifest
from edge_contracts.bundle.writer import build_manifest_bytes, write_bundle

_CACHE = Path(".cache/fuzz")
_FOLDER = _CACHE / "scratch"


def _known(exc: BaseException) -> bool:
    """Bugs the property tests already pin as xfail (tests/unit/edge_contracts/...)."""
    text = str(exc)
    return (
        isinstance(exc, OverflowError)  # float() of a huge JSON integer
        or (isinstance(exc, ValueError) and "integer string conversion" in text)
        or (isinstance(exc, TypeError) and "unhashable" in text)  # golden.path
        or (isinstance(exc, ValueError) and "invalid literal for int()" in text)  # sparse tar
        or isinstance(exc, RecursionError)  # deep JSON, being fixed
    )


def _guard(
    body: Callable[[bytes], object], allowed: tuple[type[BaseException], ...]
) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        try:
            body(data)
        except allowed:
            pass
        except Exception as exc:
            if not _known(exc):
                raise

    return run


def _bundle(data: bytes) -> None:
    path = _FOLDER / "fuzz.edgebundle"
    path.write_bytes(data)
    archive = open_archive(path)
    parse_bundle_manifest(archive.manifest_bytes)
    if archive.signature_bytes is not None:
        decode_signature(archive.signature_bytes)


def _manifest(data: bytes) -> None:
    parse_bundle_manifest(data)
    folder = _FOLDER / "version"
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_bytes(data)
    load_manifest(folder)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return
    parse_manifest(document)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "bundle": _guard(_bundle, (BundleError,)),
    "manifest": _guard(_manifest, (BundleError, ManifestError)),
}


def _seed(target: str) -> Path:
    """The corpus folder of ``target``, holding at least one valid input."""
    corpus = _CACHE / target
    corpus.mkdir(parents=True, exist_ok=True)
    _FOLDER.mkdir(parents=True, exist_ok=True)
    document = {
        "name": "digits",
        "version": "1",
        "labels": ["a", "b"],
        "preprocessing": {"input_size": [8, 8], "color_mode": "L", "mean": [0.5], "std": 0.25},
        "batching": {"max_batch_size": 4, "preferred_batch_sizes": [2]},
    }
    payloads: dict[str, bytes | Path] = {"model.onnx": b"onnx" * 8, "labels.txt": b"a\nb\n"}
    manifest = build_manifest_bytes(document, payloads)
    (_CACHE / "manifest" / "seed.json").parent.mkdir(parents=True, exist_ok=True)
    (_CACHE / "manifest" / "seed.json").write_bytes(manifest)
    signature = sign_manifest(manifest, Ed25519PrivateKey.generate()).encode()
    write_bundle(_CACHE / "bundle" / "seed.edgebundle", manifest, payloads, signature)
    return corpus


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(
            f"usage: python -m tests.fuzz.atheris_targets {{{','.join(TARGETS)}}} [libFuzzer flags]"
        )
    target = TARGETS[sys.argv[1]]
    corpus = _seed(sys.argv[1])
    atheris.Setup([sys.argv[0], *sys.argv[2:], str(corpus)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
