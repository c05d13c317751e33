"""Check the folders and files edge-server is pointed at, before anything starts.

A wrong path or a file of the wrong kind is the operator's mistake: it must end as
one line naming the flag and what to do (printed by edge_server.cli), not as a
traceback from deep inside start-up, a gRPC core log line, or, for an empty token
file, a management plane silently left open.
"""

from __future__ import annotations

from pathlib import Path

from edge_contracts.cli.tls_files import check_tls_pair, load_certificates
from edge_contracts.cli.user_files import check_token_file
from edge_contracts.errors import BundleError
from edge_server.lifecycle.assembly import trusted_key_files
from edge_server.settings import Settings


def check_settings_files(settings: Settings) -> None:
    """Raise ValueError naming the flag of the first path that cannot serve its purpose."""
    check_model_root(settings.server.model_root)
    check_trusted_keys(settings.lifecycle.trusted_keys)
    if settings.lifecycle.trust_root is not None:
        check_trust_root(settings.lifecycle.trust_root)
    for flag, token_file in (
        ("--management-token-file", settings.server.management_token_file),
        ("--orchestrator-token-file", settings.cloud.orchestrator_token_file),
        (
            "--orchestrator-enrollment-token-file",
            settings.cloud.orchestrator_enrollment_token_file,
        ),
    ):
        if token_file is not None:
            check_token_file(flag, token_file)
    if settings.server.tls_cert is not None and settings.server.tls_key is not None:
        check_tls_pair(settings.server.tls_cert, settings.server.tls_key)
    for flag, ca in (
        ("--tls-client-ca", settings.server.tls_client_ca),
        ("--orchestrator-ca", settings.cloud.orchestrator_ca),
    ):
        if ca is not None:
            load_certificates(flag, ca)


def check_model_root(root: Path) -> None:
    if root.is_dir():
        return
    problem = "not a folder" if root.exists() else "no such folder; create it"
    raise ValueError(
        f"--model-root {root}: {problem}, or point --model-root at the folder holding "
        "<model>/<version>/model.onnx"
    )


def check_trusted_keys(paths: tuple[Path, ...]) -> None:
    if not paths:
        return
    from edge_contracts.bundle.signing import load_public_key  # costs ~8 MiB: only when asked

    for path in paths:
        if not path.exists():
            raise ValueError(f"--trusted-keys {path}: no such file or folder")
    for key_file in trusted_key_files(paths):
        try:
            load_public_key(key_file)
        except BundleError as exc:
            raise ValueError(
                f"--trusted-keys: {exc}; give the publisher's public key (the .pub file "
                "`model-tools keygen` wrote)"
            ) from None


def check_trust_root(path: Path) -> None:
    from edge_contracts.bundle.signing import load_public_key  # costs ~8 MiB: only when asked

    try:
        load_public_key(path)
    except BundleError as exc:
        raise ValueError(
            f"--trust-root: {exc}; give the root's public key (`model-tools keygen --root` "
            "wrote it beside the private key, which stays offline)"
        ) from None
