"""``model-tools`` bundle subcommands: keygen, keyring, package, sign, verify."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from model_tools.cli import emit
from model_tools.cli_paths import output_file, output_folder
from model_tools.errors import ToolError, require_file

__all__ = ["add_bundle_commands"]


def _run_keygen(args: argparse.Namespace) -> int:
    from model_tools.bundle_keys import keygen

    public = args.pub or args.out.with_suffix(".pub")
    kid = keygen(args.out, public, force=args.force)
    text = f"wrote {args.out} (keep it secret) and {public}; key id {kid}"
    if args.root:
        text = (
            f"wrote root key {args.out} (keep it offline) and {public} (give it to gateways "
            f"as --trust-root); key id {kid}"
        )
    emit(
        args,
        {"private_key": str(args.out), "public_key": str(public), "key_id": kid, "root": args.root},
        text,
    )
    return 0


def _run_keyring(args: argparse.Namespace) -> int:
    from model_tools.trust_tools import update_keyring

    result = update_keyring(
        args.out,
        args.root_key,
        previous=args.previous,
        add=args.add_key or (),
        models=(args.models or "*").split(","),
        remove=args.remove_key or (),
        version=args.keyring_version,
        expires_in_days=args.expires_in,
        key_expires_in_days=args.key_expires_in,
    )
    ring = result.keyring
    keys = ", ".join(f"{k.key_id} ({','.join(k.models)})" for k in ring.keys) or "none"
    emit(
        args,
        result.to_dict(),
        f"wrote {args.out}: keyring version {ring.version}, expires "
        f"{result.to_dict()['expires']}; signing keys: {keys}",
    )
    return 0


def _check_trust_options(args: argparse.Namespace) -> None:
    if args.sequence is None and (args.keyring is not None or args.expires_in is not None):
        raise ToolError(
            "--keyring and --expires-in need --sequence N (the model's release number, "
            "above the previous one's)"
        )
    if args.sequence is not None and args.key is None:
        raise ToolError("--sequence needs --key: signed metadata must be signed")


def _golden_inputs(args: argparse.Namespace) -> Any:
    if args.golden is None:
        return None
    from model_tools.calibration import calibration_for_model
    from model_tools.packaging import golden_count

    count = golden_count(args.model, args.golden_count)
    if str(args.golden) != "random" and not args.golden.exists():
        raise ToolError(f"golden inputs not found: {args.golden}")
    if str(args.golden) == "random":
        import numpy as np

        from model_tools.bench import random_feed
        from model_tools.sessions import open_session

        feed = random_feed(open_session(args.model), count)
        return np.asarray(next(iter(feed.values())))
    return calibration_for_model(args.model, args.golden, args.manifest, count)


def _run_package(args: argparse.Namespace) -> int:
    from model_tools.packaging import package_model

    _check_trust_options(args)
    evaluation = None
    if args.evaluation is not None:
        require_file(args.evaluation, "evaluation file")
        try:
            evaluation = json.loads(args.evaluation.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ToolError(f"{args.evaluation}: not valid JSON ({exc})") from None
        if not isinstance(evaluation, dict):
            raise ToolError(f"{args.evaluation}: expected a JSON object")
    result = package_model(
        args.model,
        args.output,
        signing_key=args.key,
        manifest_path=args.manifest,
        name=args.name,
        version=args.model_version,
        golden_inputs=_golden_inputs(args),
        golden_atol=args.golden_atol,
        evaluation=evaluation,
        breaking_change=args.breaking_change,
        sequence=args.sequence,
        expires_in_days=90 if args.expires_in is None else args.expires_in,
        keyring=args.keyring,
    )
    signed = f"signed by key {result.key_id}" if result.key_id else "UNSIGNED (run sign)"
    if args.sequence is not None:
        signed += f", sequence {args.sequence}"
    emit(
        args,
        result.to_dict(),
        f"wrote {result.path}: {result.name} version {result.version}, {signed}; files: "
        + ", ".join(f"{p} ({n} B)" for p, n in result.files.items()),
    )
    return 0


def _run_sign(args: argparse.Namespace) -> int:
    from model_tools.trust_tools import resign_bundle

    _check_trust_options(args)
    kid = resign_bundle(
        args.bundle,
        args.key,
        args.output,
        sequence=args.sequence,
        expires_in_days=90 if args.expires_in is None else args.expires_in,
        keyring=args.keyring,
        legacy=args.legacy,
    )
    target = args.output or args.bundle
    what = f", sequence {args.sequence}" if args.sequence is not None else " (legacy signature)"
    emit(
        args,
        {"bundle": str(target), "key_id": kid, "sequence": args.sequence},
        f"signed {target} with key {kid}{what}",
    )
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from edge_contracts.atomic_files import PUBLIC_DIR
    from edge_contracts.bundle.signing import load_public_key
    from edge_contracts.bundle.verify import extract_verified, verify_bundle

    if args.trust_root is not None:
        return _verify_trusted(args)
    if not args.trusted_key:
        raise ToolError("give --trusted-key FILE (legacy) or --trust-root FILE")
    keys = [load_public_key(path) for path in args.trusted_key]
    if args.extract is not None:
        bundle = extract_verified(args.bundle, args.extract, keys, folder_mode=PUBLIC_DIR)
    else:
        bundle = verify_bundle(args.bundle, keys)
    m = bundle.manifest
    data = {
        "bundle": str(args.bundle),
        "valid": True,
        "key_id": bundle.key_id,
        "name": m.name,
        "version": m.version,
        "format_version": m.format_version,
        "created_at": m.created_at,
        "breaking_change": m.breaking_change,
        "files": {p: {"sha256": f.sha256, "size": f.size} for p, f in m.files.items()},
        "evaluation": m.document.get("evaluation"),
        "extracted_to": str(args.extract) if args.extract else None,
    }
    text = (
        f"OK: {args.bundle} is {m.name} version {m.version}, signed by trusted key "
        f"{bundle.key_id}; {len(m.files)} file(s) match the manifest"
    )
    if args.extract:
        text += f"\nextracted to {args.extract}"
    emit(args, data, text)
    return 0


def _verify_trusted(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge_contracts.atomic_files import PUBLIC_DIR
    from edge_contracts.bundle.verify import extract_verified
    from edge_contracts.trust.canonical import format_utc
    from model_tools.trust_tools import verify_trusted

    checked = verify_trusted(args.bundle, args.trust_root, args.keyring)
    t, ring, m = checked.targets, checked.keyring, checked.bundle.manifest
    if args.extract is not None:
        key = Ed25519PublicKey.from_public_bytes(checked.public_key)
        extract_verified(args.bundle, args.extract, [key], folder_mode=PUBLIC_DIR)
    data = {
        "bundle": str(args.bundle),
        "valid": True,
        "key_id": checked.bundle.key_id,
        "name": m.name,
        "version": m.version,
        "sequence": t.sequence,
        "expires": format_utc(t.expires),
        "keyring_version": ring.version,
        "keyring_expires": format_utc(ring.expires),
        "files": {p: {"sha256": f.sha256, "size": f.size} for p, f in m.files.items()},
        "extracted_to": str(args.extract) if args.extract else None,
    }
    text = (
        f"OK: {args.bundle} is {m.name} version {m.version}, sequence {t.sequence}, "
        f"expires {data['expires']}; signed by key {checked.bundle.key_id}, certified by "
        f"keyring version {ring.version} (expires {data['keyring_expires']}); "
        f"{len(m.files)} file(s) match the manifest"
    )
    emit(args, data, text)
    return 0


def _add_keyring_command(commands: Any) -> None:
    p = commands.add_parser(
        "keyring",
        help="create or update a root-signed keyring of signing keys",
        description="Write a keyring (docs/security.md): the --from keyring's keys, plus "
        "--add-key, minus --remove-key, version bumped, signed with the root key.",
    )
    p.add_argument("--root-key", type=Path, required=True, help="root private key (offline)")
    p.add_argument("--out", type=output_file, required=True, help="keyring file to write")
    p.add_argument("--from", dest="previous", type=Path, help="keyring to start from")
    p.add_argument(
        "--add-key", type=Path, action="append", help="signing public key to certify (repeatable)"
    )
    p.add_argument("--models", help="models the added keys may sign, comma-separated (default *)")
    p.add_argument(
        "--remove-key", action="append", help="key id or public key file to revoke (repeatable)"
    )
    p.add_argument(
        "--version",
        dest="keyring_version",
        type=int,
        help="keyring version (default: the --from version + 1, or 1)",
    )
    p.add_argument("--expires-in", type=int, default=365, help="keyring lifetime in days")
    p.add_argument("--key-expires-in", type=int, default=365, help="lifetime of added keys in days")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_keyring)


def _add_targets_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sequence",
        type=int,
        help="release number of this model, above the previous one's: adds signed targets "
        "metadata that --trust-root gateways require",
    )
    p.add_argument(
        "--expires-in", type=int, help="days until the signed metadata expires (default 90)"
    )
    p.add_argument("--keyring", type=Path, help="keyring to carry inside the bundle")


def add_bundle_commands(commands: Any) -> None:
    p = commands.add_parser("keygen", help="create an Ed25519 signing key pair")
    p.add_argument("--out", type=output_file, required=True, help="private key file (PEM)")
    p.add_argument("--pub", type=output_file, help="public key file (default: <out>.pub)")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument(
        "--root", action="store_true", help="an offline root key that signs keyrings only"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_keygen)
    _add_keyring_command(commands)

    p = commands.add_parser(
        "package",
        help="model + manifest + golden samples -> bundle",
        description="Write a model bundle (see docs/bundle-format.md).",
    )
    p.add_argument("model", type=Path)
    p.add_argument(
        "-o", "--output", type=output_file, required=True, help="bundle file (.edgebundle)"
    )
    p.add_argument("--key", type=Path, help="private key to sign with (else unsigned)")
    p.add_argument("--manifest", type=Path, help="serving manifest (default: beside the model)")
    p.add_argument("--name")
    p.add_argument("--model-version")
    p.add_argument(
        "--golden", type=Path, help="golden inputs: image folder, .npy/.npz, or 'random'"
    )
    p.add_argument(
        "--golden-count",
        type=int,
        default=4,
        help="how many (a model with a fixed batch size B gets B: the gateway runs one batch)",
    )
    p.add_argument("--golden-atol", type=float, help="tolerance the gateway applies")
    p.add_argument("--evaluation", type=Path, help="JSON object to store as 'evaluation'")
    p.add_argument(
        "--breaking-change",
        action="store_true",
        help="mark the version as incompatible with the previous one",
    )
    _add_targets_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_package)

    p = commands.add_parser(
        "sign",
        help="(re-)sign a bundle",
        description="Re-sign a bundle. With --sequence (and --keyring) the signature carries "
        "signed targets metadata, as package writes it (docs/security.md); a bundle that "
        "carries targets needs --keyring, or --legacy to drop them on purpose.",
    )
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("-o", "--output", type=output_file, help="write here instead of in place")
    _add_targets_options(p)
    p.add_argument(
        "--legacy",
        action="store_true",
        help="a legacy signature only, dropping any targets metadata (sequence, expiry)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_sign)

    p = commands.add_parser("verify", help="check a bundle's signature and files")
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        help="trusted public key (repeatable; legacy trust)",
    )
    p.add_argument("--trust-root", type=Path, help="root public key: check keyring and targets")
    p.add_argument("--keyring", type=Path, help="keyring to check with (default: the bundle's)")
    p.add_argument(
        "--extract", type=output_folder, help="after verifying, extract into this new folder"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_verify)
