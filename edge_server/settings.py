"""One frozen settings object, built once at the program's edge.

Precedence: CLI flags > environment variables (``EDGE_`` prefix) > config file
(JSON, ``--config``) > defaults. Every field here is documented by ``edge-server
--help`` and the README's configuration table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_contracts.cli.user_files import read_user_file

ENV_PREFIX = "EDGE_"


def default_cpu_count() -> int:
    """Cores this process may use (respects CPU affinity / cgroup cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """Gateway configuration; see ``FIELD_HELP`` for each field's meaning."""

    model_root: Path = Path("models")
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 8080
    max_message_bytes: int = 16 * 1024 * 1024
    default_model: str = ""
    pinned_versions: Mapping[str, str] = field(default_factory=dict)
    gateway_id: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    intra_op_threads: int = 0
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    execution_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    inference_workers: int = 0
    preprocess_workers: int = 0
    max_queue_size: int = 128
    max_concurrent_rpcs: int = 0
    batching: bool = True
    max_batch_size: int = 8
    max_queue_delay_us: int = 500
    inline_threshold_us: int = 300
    max_image_pixels: int = 40_000_000
    shutdown_grace_seconds: float = 10.0
    management_token: str = ""
    management_token_file: Path | None = None
    management_host: str = ""
    management_port: int = -1
    trusted_keys: tuple[Path, ...] = ()
    allow_unsigned: bool = False
    max_bundle_bytes: int = 512 * 1024 * 1024
    disk_quota_bytes: int = 4 * 1024 * 1024 * 1024
    keep_versions: int = 3
    update_idle_timeout_seconds: float = 30.0
    rollback_window_seconds: float = 60.0
    rollback_min_requests: int = 20
    rollback_max_fault_rate_increase: float = 0.05
    rollback_max_p99_ratio: float = 2.0
    shadow_sample_rate: float = 0.1
    orchestrator: str = ""
    orchestrator_token: str = ""
    orchestrator_token_file: Path | None = None
    orchestrator_ca: Path | None = None
    gateway_labels: Mapping[str, str] = field(default_factory=dict)
    feedback_db: Path | None = None
    outbox_max_bytes: int = 64 * 1024 * 1024
    feedback_bucket_seconds: int = 60
    log_level: str = "INFO"
    workers: int = 1
    worker_thread_nice: int = 5
    shared_memory: str = "local"
    shared_memory_max_regions: int = 64

    def __post_init__(self) -> None:
        problems = []
        for name in ("grpc_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                problems.append(f"{name} must be 0..65535, got {port}")
        if self.max_message_bytes < 1024:
            problems.append("max_message_bytes must be at least 1024")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            problems.append("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            problems.append(
                f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}"
            )
        for name in ("intra_op_threads", "inter_op_threads", "inference_workers"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0 (0 = automatic)")
        if self.preprocess_workers < 0:
            problems.append("preprocess_workers must be >= 0 (0 = automatic)")
        if not 1 <= self.max_batch_size <= 1024:
            problems.append("max_batch_size must be 1..1024")
        if not 0 <= self.inline_threshold_us <= 100_000:
            problems.append("inline_threshold_us must be 0..100000")
        if not 0 <= self.max_queue_delay_us <= 1_000_000:
            problems.append("max_queue_delay_us must be 0..1000000")
        if self.max_concurrent_rpcs < 0:
            problems.append("max_concurrent_rpcs must be >= 0 (0 = automatic)")
        if self.max_queue_size < 1:
            problems.append("max_queue_size must be >= 1")
        if self.max_image_pixels < 1:
            problems.append("max_image_pixels must be >= 1")
        if not -1 <= self.management_port <= 65535:
            problems.append("management_port must be -1 (shared), 0 (any) or a port")
        if self.keep_versions < 1:
            problems.append("keep_versions must be >= 1")
        if not 0 <= self.shadow_sample_rate <= 1:
            problems.append("shadow_sample_rate must be within 0..1")
        if self.max_bundle_bytes < 1 or self.disk_quota_bytes < 1:
            problems.append("max_bundle_bytes and disk_quota_bytes must be positive")
        if self.shutdown_grace_seconds < 0:
            problems.append("shutdown_grace_seconds must be >= 0")
        if self.orchestrator and not self.orchestrator.rpartition(":")[2].isdigit():
            problems.append("orchestrator must be HOST:PORT (empty = pull mode off)")
        if self.outbox_max_bytes < 1024:
            problems.append("outbox_max_bytes must be at least 1024")
        if not 1 <= self.feedback_bucket_seconds <= 86_400:
            problems.append("feedback_bucket_seconds must be 1..86400")
        if not 0 <= self.worker_thread_nice <= 19:
            problems.append("worker_thread_nice must be 0..19 (0 = same priority as the loop)")
        if self.shared_memory not in SHARED_MEMORY_MODES:
            problems.append(f"shared_memory must be one of {', '.join(SHARED_MEMORY_MODES)}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append("log_level must be DEBUG, INFO, WARNING or ERROR")
        if not 1 <= self.shared_memory_max_regions <= 4096:
            problems.append("shared_memory_max_regions must be 1..4096")
        if self.workers < 0:
            problems.append("workers must be >= 0 (0 = one per core)")
        elif self.effective_workers > 1:
            if self.management_port == -1:
                problems.append(
                    "workers > 1 needs --management-port (0 = any free port): model "
                    "management is served by the primary process only, on its own port"
                )
            if self.orchestrator:
                problems.append(
                    "workers > 1 cannot be combined with --orchestrator yet: feedback and "
                    "pull mode run in the primary process and would miss the other workers"
                )
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def effective_workers(self) -> int:
        """Gateway processes sharing the gRPC port: one per core when 0."""
        return self.workers or default_cpu_count()

    @property
    def cores_per_worker(self) -> int:
        """The cores each gateway process sizes its thread pools for."""
        return max(1, default_cpu_count() // self.effective_workers)

    @property
    def effective_inference_workers(self) -> int:
        """Concurrent session.run calls: one per core by default."""
        return self.inference_workers or self.cores_per_worker

    @property
    def effective_max_concurrent_rpcs(self) -> int:
        """Hard cap on calls in Python; headroom above one model's queue for health and
        management calls."""
        return self.max_concurrent_rpcs or self.max_queue_size + 64

    @property
    def effective_intra_op_threads(self) -> int:
        """ONNX Runtime threads per run: cores shared among the inference workers."""
        if self.intra_op_threads:
            return self.intra_op_threads
        return max(1, self.cores_per_worker // self.effective_inference_workers)

    @property
    def effective_preprocess_workers(self) -> int:
        """Image decode threads (Pillow releases the GIL): one per core by default."""
        return self.preprocess_workers or self.cores_per_worker

    @property
    def effective_management_token(self) -> str:
        """The token from --management-token, else from --management-token-file."""
        if self.management_token:
            return self.management_token
        if self.management_token_file is not None:
            return self.management_token_file.read_text(encoding="utf-8").strip()
        return ""

    @property
    def effective_gateway_id(self) -> str:
        return self.gateway_id or os.uname().nodename

    @property
    def effective_orchestrator_token(self) -> str:
        if self.orchestrator_token:
            return self.orchestrator_token
        if self.orchestrator_token_file is not None:
            return self.orchestrator_token_file.read_text(encoding="utf-8").strip()
        return ""

    @property
    def effective_feedback_db(self) -> Path:
        return self.feedback_db or Path(self.model_root) / ".feedback.sqlite3"


GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
SHARED_MEMORY_MODES = ("off", "local", "on")

FIELD_HELP: dict[str, str] = {
    "model_root": "folder holding <model>/<version>/model.onnx (+ manifest.json)",
    "host": "interface to bind (0.0.0.0 for all)",
    "grpc_port": "gRPC port (0 picks a free one)",
    "http_port": "HTTP port for /metrics and /healthz (0 picks a free one)",
    "max_message_bytes": "largest gRPC message accepted or sent, bytes",
    "default_model": "model used when a request's model_name is empty "
    "(default: the only model, or the first by name)",
    "pinned_versions": "versions to activate at start-up, as NAME=VERSION[,NAME=VERSION] "
    "(default: the highest version of each model)",
    "gateway_id": "id reported by Health (default: the host name)",
    "tls_cert": "PEM server certificate (enables TLS)",
    "tls_key": "PEM private key of --tls-cert",
    "tls_client_ca": "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)",
    "intra_op_threads": "ONNX Runtime intra-op threads per run (0 = cores / (workers x "
    "inference workers), i.e. 1 when the inference workers already fill the cores)",
    "inter_op_threads": "ONNX Runtime inter-op threads per session",
    "graph_optimization": "ONNX Runtime graph optimization level: disable, basic, extended, all",
    "execution_providers": "comma-separated ONNX Runtime providers in preference order; "
    "missing ones are skipped, CPU is always the fallback",
    "inference_workers": "concurrent session.run calls (0 = one per core)",
    "preprocess_workers": "image decode/resize threads (0 = one per core)",
    "max_queue_size": "requests admitted per model before RESOURCE_EXHAUSTED",
    "max_concurrent_rpcs": "calls the gRPC core hands to Python at once; beyond it, calls are "
    "refused with RESOURCE_EXHAUSTED in C before they cost memory or event-loop time "
    "(0 = max_queue_size + 64)",
    "batching": "dynamic batching for models with a dynamic batch axis (true/false; a "
    "manifest's `batching` section overrides it per model)",
    "max_batch_size": "rows per batched session.run at most",
    "inline_threshold_us": "models whose measured preprocess + inference stays under this "
    "run on the event loop instead of the thread pools (0 = never)",
    "max_queue_delay_us": "longest a request waits for others to share its batch, in "
    "microseconds (only while more requests for the model are on their way)",
    "max_image_pixels": "largest decoded image, in pixels (decompression-bomb guard)",
    "shutdown_grace_seconds": "how long in-flight calls may finish after SIGTERM",
    "management_token": "bearer token required on management calls (ModelService); "
    "prefer --management-token-file so it stays out of `ps`",
    "management_token_file": "file holding the management bearer token",
    "management_host": "interface for a separate management port (default: --host)",
    "management_port": "serve ModelService on this port only, apart from inference "
    "(-1 = same port as inference; 0 = any free port)",
    "trusted_keys": "comma-separated Ed25519 public key files (or folders of *.pub) whose "
    "signatures pushed bundles must carry",
    "allow_unsigned": "accept unsigned bundles when no signature is present (development only)",
    "max_bundle_bytes": "largest bundle ModelUpdate accepts",
    "disk_quota_bytes": "most bytes the model root may hold, uploads included",
    "keep_versions": "versions kept on disk per model (the active one and the rollback "
    "target are never removed)",
    "update_idle_timeout_seconds": "a ModelUpdate stream silent this long is aborted",
    "rollback_window_seconds": "watch a new version this long after activation (0 = off)",
    "rollback_min_requests": "requests a new version must serve before it is judged",
    "rollback_max_fault_rate_increase": "roll back when the model-fault rate exceeds the "
    "previous version's by more than this (0.05 = 5 points)",
    "rollback_max_p99_ratio": "roll back when p99 latency exceeds the previous version's "
    "by this factor (and by more than 5 ms)",
    "shadow_sample_rate": "share of live requests also run on a shadow version, 0..1",
    "orchestrator": "HOST:PORT of the orchestrator to dial out to (pull mode: desired "
    "versions, status, feedback upload); empty = off",
    "orchestrator_token": "fleet bearer token sent to the orchestrator (prefer "
    "--orchestrator-token-file)",
    "orchestrator_token_file": "file holding the fleet bearer token",
    "orchestrator_ca": "PEM CA of the orchestrator's TLS certificate (enables TLS to it)",
    "gateway_labels": "labels reported to the orchestrator, as KEY=VALUE[,KEY=VALUE] "
    "(e.g. site=berlin,hardware=rpi4)",
    "feedback_db": "SQLite outbox of results waiting for upload (default: "
    "MODEL_ROOT/.feedback.sqlite3)",
    "outbox_max_bytes": "byte cap of the feedback outbox; the oldest batches are dropped "
    "(and counted) beyond it",
    "feedback_bucket_seconds": "length of a feedback aggregation bucket, seconds",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "shared_memory": "V2 system shared-memory regions (inputs read from and outputs written "
    "to /dev/shm instead of the message): off, local (only callers on this machine: "
    "loopback or unix socket peers) or on (any caller)",
    "shared_memory_max_regions": "most shared-memory regions registered at once",
    "worker_thread_nice": "nice value added to decode, inference and model-loading threads "
    "(Linux), so the event loop that admits and refuses calls is served first under "
    "overload; 0 = off",
    "workers": "gateway processes serving the gRPC port together (SO_REUSEPORT; 0 = one "
    "per core); more than 1 needs --management-port",
}


def _convert(name: str, raw: Any) -> Any:
    """Turn a string or JSON value into the type of field ``name``."""
    if name in ("model_root", "tls_cert", "tls_key", "tls_client_ca", "management_token_file",
                "orchestrator_token_file", "orchestrator_ca", "feedback_db"):  # fmt: skip
        return Path(raw) if raw not in (None, "") else None
    if name == "execution_providers":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(item.strip() for item in items if item.strip())
    if name in ("pinned_versions", "gateway_labels"):
        return parse_pins(raw) if isinstance(raw, str) else dict(raw)
    if name == "trusted_keys":
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(Path(str(item).strip()) for item in items if str(item).strip())
    if name in ("allow_unsigned", "batching"):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError("use true or false")
        return text in ("1", "true", "yes", "on")
    default = Settings.__dataclass_fields__[name].default
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, int) and not isinstance(default, bool):
        return int(raw)
    return str(raw)


def settings_to_json(settings: Settings) -> dict[str, Any]:
    """Settings as a JSON object that ``load_settings(config_file=...)`` reads back."""
    data: dict[str, Any] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(item) for item in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        data[f.name] = value
    return data


def parse_pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, version = item.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"pinned version {item!r} is not NAME=VERSION")
        pins[name.strip()] = version.strip()
    return pins


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a ``--config`` JSON file holds; ValueError naming the file otherwise."""
    try:
        data = json.loads(read_user_file("--config", path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f'--config {path}: must hold a JSON object of settings, e.g. {{"grpc_port": 50051}}'
        )
    return data


def load_settings(
    cli_values: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the layers; ``cli_values`` holds only flags the user actually gave."""
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = {}
    if config_file is not None:
        merged.update(read_config_file(config_file))
    names = {f.name for f in fields(Settings)}
    for name in names:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            merged[name] = env_value
    merged.update({k: v for k, v in cli_values.items() if v is not None})
    unknown = sorted(set(merged) - names)
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
    converted: dict[str, Any] = {}
    for name, raw in merged.items():
        try:
            converted[name] = _convert(name, raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"setting {name}: cannot use {raw!r} ({exc})") from None
    return Settings(**converted)
