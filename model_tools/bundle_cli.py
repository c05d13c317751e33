"""``model-tools`` bundle subcommands: keygen, package, sign, verify."""

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
    emit(
        args,
        {"private_key": str(args.out), "public_key": str(public), "key_id": kid},
        f"wrote {args.out} (keep it secret) and {public}; key id {kid}",
    )
    return 0


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
    )
    signed = f"signed by key {result.key_id}" if result.key_id else "UNSIGNED (run sign)"
    emit(
        args,
        result.to_dict(),
        f"wrote {result.path}: {result.name} version {result.version}, {signed}; files: "
        + ", ".join(f"{p} ({n} B)" for p, n in result.files.items()),
    )
    return 0


def _run_sign(args: argparse.Namespace) -> int:
    from model_tools.bundle_keys import sign_bundle

    kid = sign_bundle(args.bundle, args.key, args.output)
    target = args.output or args.bundle
    emit(args, {"bundle": str(target), "key_id": kid}, f"signed {target} with key {kid}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    from edge_contracts.atomic_files import PUBLIC_DIR
    from edge_contracts.bundle.signing import load_public_key
    from edge_contracts.bundle.verify import extract_verified, verify_bundle

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


def add_bundle_commands(commands: Any) -> None:
    p = commands.add_parser("keygen", help="create an Ed25519 signing key pair")
    p.add_argument("--out", type=output_file, required=True, help="private key file (PEM)")
    p.add_argument("--pub", type=output_file, help="public key file (default: <out>.pub)")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_keygen)

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
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_package)

    p = commands.add_parser("sign", help="(re-)sign a bundle")
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.add_argument("-o", "--output", type=output_file, help="write here instead of in place")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_sign)

    p = commands.add_parser("verify", help="check a bundle's signature and files")
    p.add_argument("bundle", type=Path)
    p.add_argument(
        "--trusted-key",
        type=Path,
        action="append",
        required=True,
        help="trusted public key (repeatable)",
    )
    p.add_argument(
        "--extract", type=output_folder, help="after verifying, extract into this new folder"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_run_verify)
