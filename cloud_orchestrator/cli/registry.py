"""``edge-orchestrator publish``, ``models`` and ``versions``: the model registry."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud_orchestrator.cli.output import emit, json_flag, table, when
from cloud_orchestrator.errors import InvalidRequest

__all__ = ["KEYS_ENV", "REGISTRY_COMMANDS", "add_registry_commands"]

KEYS_ENV = "EDGE_ORCHESTRATOR_TRUSTED_KEYS"


def add_registry_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = command("publish", "verify a signed bundle and add it to the registry")
    p.add_argument("bundle", type=Path, help="the .edgebundle file")
    p.add_argument(
        "--trusted-keys",
        default=None,
        help=f"comma-separated Ed25519 public keys or folders of *.pub [env {KEYS_ENV}]",
    )
    p.add_argument("--parent", default="", help="parent version (lineage); default: manifest")
    p.add_argument("--published-by", default="", help="who publishes (default: the user)")
    json_flag(p)

    p = command("models", "list the models in the registry")
    json_flag(p)

    p = command("versions", "list the versions of a model")
    p.add_argument("name")
    json_flag(p)


def _trusted_keys(value: str | None) -> list[Path]:
    raw = value if value is not None else os.environ.get(KEYS_ENV, "")
    return [Path(p.strip()) for p in raw.split(",") if p.strip()]


def cmd_publish(orch: Any, args: argparse.Namespace) -> int:
    from cloud_orchestrator.registry.store import load_trusted_keys

    paths = _trusted_keys(args.trusted_keys)
    if not paths:
        raise InvalidRequest(
            f"no trusted public keys: pass --trusted-keys KEY.pub or a folder of *.pub (or set "
            f"{KEYS_ENV}); the registry only accepts bundles whose signature it can verify"
        )
    try:
        keys = load_trusted_keys(paths)
    except InvalidRequest as exc:
        raise InvalidRequest(f"--trusted-keys: {exc}") from None
    info = orch.registry.publish(args.bundle, keys, args.published_by, args.parent)
    emit(
        args,
        info.to_dict(),
        lambda: (
            f"published {info.model} version {info.version} (sha256 {info.sha256[:16]}.., "
            f"{info.size_bytes} bytes, signed by {info.key_id})"
        ),
    )
    return 0


def cmd_models(orch: Any, args: argparse.Namespace) -> int:
    models = orch.registry.models()
    emit(
        args,
        [m.__dict__ for m in models],
        lambda: table(
            [(m.name, m.versions, m.latest_version, when(m.latest_published_at)) for m in models],
            ("MODEL", "VERSIONS", "LATEST", "PUBLISHED"),
        ),
    )
    return 0


def cmd_versions(orch: Any, args: argparse.Namespace) -> int:
    versions = orch.registry.versions(args.name)

    def metric(v: Any) -> str:
        top1 = v.evaluation.get("top1")
        return f"{top1:.4f}" if isinstance(top1, int | float) else "-"

    emit(
        args,
        [v.to_dict() for v in versions],
        lambda: table(
            [
                (
                    v.version,
                    v.sha256[:12],
                    v.size_bytes,
                    metric(v),
                    v.parent_version or "-",
                    v.key_id,
                    v.published_by,
                    when(v.published_at),
                )
                for v in versions
            ],
            ("VERSION", "SHA256", "BYTES", "TOP1", "PARENT", "KEY", "BY", "PUBLISHED"),
        ),
    )
    return 0


REGISTRY_COMMANDS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "publish": cmd_publish,
    "models": cmd_models,
    "versions": cmd_versions,
}
