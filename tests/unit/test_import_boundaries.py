"""edge_contracts is what every tier shares: it must not lean on a tier, nor weigh like one.

model_tools and cloud_orchestrator reach the gateway's rules only through edge_contracts,
and the modules the gateway loads at start-up leave cryptography to the code that needs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.support.paths import REPO

ROOT = REPO
TIERS = {"edge_server", "edge_client", "model_tools", "cloud_orchestrator"}
HEAVY = {"torch", "onnx", "onnxruntime", "sqlalchemy"}


def _imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level names each module of ``package`` imports (also inside functions)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_edge_contracts_imports_no_tier_and_nothing_heavy() -> None:
    offending = {
        module: sorted(names & (TIERS | HEAVY))
        for module, names in _imported_packages("edge_contracts").items()
        if names & (TIERS | HEAVY)
    }
    assert offending == {}


def test_tools_and_orchestrator_import_nothing_from_the_gateway() -> None:
    offending = [
        module
        for package in ("model_tools", "cloud_orchestrator")
        for module, names in _imported_packages(package).items()
        if "edge_server" in names
    ]
    assert offending == []


# The gateway's layers that must not know a protocol or an engine (CONTRIBUTING.md, Layers).
PLAIN_LAYERS = ("catalogue", "inference", "scheduling", "v2", "lifecycle", "settings")


def test_the_gateways_plain_layers_import_no_grpc() -> None:
    offending = {
        module: sorted(names & {"grpc", "grpc_health", "grpc_reflection"})
        for layer in PLAIN_LAYERS
        for module, names in _imported_packages(f"edge_server/{layer}").items()
        if names & {"grpc", "grpc_health", "grpc_reflection"}
    }
    assert offending == {}
    assert all((ROOT / "edge_server" / layer / "__init__.py").is_file() for layer in PLAIN_LAYERS)


def test_only_the_runtime_imports_onnxruntime() -> None:
    importers = sorted(
        module
        for module, names in _imported_packages("edge_server").items()
        if "onnxruntime" in names
    )
    assert importers == ["edge_server/runtime/onnx_session.py"]


def test_contract_modules_without_signatures_do_not_load_cryptography() -> None:
    modules = [
        "edge_contracts.errors",
        "edge_contracts.manifest",
        "edge_contracts.feedback_policy",
        "edge_contracts.atomic_files",
        "edge_contracts.backoff",
        "edge_contracts.bundle.format",
        "edge_contracts.bundle.archive",
        "edge_contracts.bundle.writer",
        "edge_contracts.bundle.golden",
        "edge_contracts.cli.parser",
        "edge_contracts.cli.ports",
        "edge_contracts.cli.user_files",
        "edge_contracts.cli.tls_files",
    ]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {sorted(HEAVY | {'cryptography'})!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
