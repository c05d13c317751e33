"""The six sections of the gateway's settings, each field with its help text beside it:
the serving ones here, the cloud link's (cloud, feedback) in
edge_server/settings/link_sections.py.

Every section checks its own values (``problems``); edge_server/settings/gateway.py
adds the checks that span sections.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from edge_server.settings.fields import GRAPH_OPTIMIZATION_LEVELS, SHARED_MEMORY_MODES, setting
from edge_server.settings.link_sections import CloudSettings, FeedbackSettings


@dataclass(frozen=True)
class ServerSettings:
    """Listeners, TLS, management access and the process layout."""

    model_root: Path = setting(
        Path("models"), "folder holding <model>/<version>/model.onnx (+ manifest.json)"
    )
    host: str = setting("127.0.0.1", "interface to bind (0.0.0.0 for all)")
    grpc_port: int = setting(50051, "gRPC port (0 picks a free one)")
    http_port: int = setting(
        8080, "HTTP port: REST and KServe V2 REST, /metrics, /healthz (0 picks a free one)"
    )
    max_message_bytes: int = setting(
        16 * 1024 * 1024, "largest gRPC message accepted or sent, bytes"
    )
    gateway_id: str = setting("", "id reported by Health (default: the host name)")
    tls_cert: Path | None = setting(None, "PEM server certificate (enables TLS)")
    tls_key: Path | None = setting(None, "PEM private key of --tls-cert")
    tls_client_ca: Path | None = setting(
        None, "PEM CA bundle; when set, clients must present a certificate it signed (mTLS)"
    )
    management_token: str = setting(
        "",
        "bearer token required on management calls (ModelService); prefer "
        "--management-token-file so it stays out of `ps`",
    )
    management_token_file: Path | None = setting(None, "file holding the management bearer token")
    management_host: str = setting("", "interface for a separate management port (default: --host)")
    management_port: int = setting(
        -1,
        "serve ModelService on this port only, apart from inference (-1 = same port as "
        "inference; 0 = any free port)",
    )
    shutdown_grace_seconds: float = setting(
        10.0, "how long in-flight calls may finish after SIGTERM"
    )
    workers: int = setting(
        0,
        "gateway processes serving the gRPC port together (SO_REUSEPORT; 0 = automatic: "
        "one per core while the memory holds a copy of the models per process, 1 in pull "
        "mode); management answers on every process",
    )
    shared_memory: str = setting(
        "local",
        "V2 system shared-memory regions (inputs read from and outputs written to /dev/shm "
        "instead of the message): off, local (only callers on this machine: loopback or "
        "unix socket peers) or on (any caller)",
    )
    shared_memory_max_regions: int = setting(64, "most shared-memory regions registered at once")
    shared_memory_app_tokens: Path | None = setting(
        None,
        "file of app tokens for V2 shared memory, one line per app: '<app> <uid or user> "
        "<token>' (mode 600); an app sends 'authorization: Bearer <token>' and registers "
        "only objects its uid owns (without it, only the management token can register)",
    )
    http_max_connections: int = setting(
        64,
        "HTTP connections open at once per gateway process (each of --workers has its own "
        "cap); beyond it a new one gets 503 + Retry-After at once, so idle HTTP clients "
        "cannot take the file descriptors gRPC needs",
    )
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR")

    def problems(self) -> list[str]:
        found = [
            f"{name} must be 0..65535, got {getattr(self, name)}"
            for name in ("grpc_port", "http_port")
            if not 0 <= getattr(self, name) <= 65535
        ]
        if self.max_message_bytes < 1024:
            found.append("max_message_bytes must be at least 1024")
        if (self.tls_cert is None) != (self.tls_key is None):
            found.append("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            found.append("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if not -1 <= self.management_port <= 65535:
            found.append("management_port must be -1 (shared), 0 (any) or a port")
        if self.shutdown_grace_seconds < 0:
            found.append("shutdown_grace_seconds must be >= 0")
        if self.workers < 0:
            found.append("workers must be >= 0 (0 = automatic: one per core)")
        if self.shared_memory not in SHARED_MEMORY_MODES:
            found.append(f"shared_memory must be one of {', '.join(SHARED_MEMORY_MODES)}")
        if not 1 <= self.shared_memory_max_regions <= 4096:
            found.append("shared_memory_max_regions must be 1..4096")
        if not 1 <= self.http_max_connections <= 65_536:
            found.append("http_max_connections must be 1..65536")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            found.append("log_level must be DEBUG, INFO, WARNING or ERROR")
        return found


@dataclass(frozen=True)
class RuntimeSettings:
    """ONNX Runtime sessions and the thread pools that feed them."""

    intra_op_threads: int = setting(
        0,
        "ONNX Runtime intra-op threads per run (0 = cores / inference workers, i.e. 1 "
        "when the inference workers already fill the cores)",
    )
    inter_op_threads: int = setting(1, "ONNX Runtime inter-op threads per session")
    graph_optimization: str = setting(
        "all", "ONNX Runtime graph optimization level: disable, basic, extended, all"
    )
    execution_providers: tuple[str, ...] = setting(
        ("CPUExecutionProvider",),
        "comma-separated ONNX Runtime providers in preference order; missing ones are "
        "skipped, CPU is always the fallback",
    )
    inference_workers: int = setting(0, "concurrent session.run calls (0 = one per core)")
    preprocess_workers: int = setting(0, "image decode/resize threads (0 = one per core)")
    worker_thread_nice: int = setting(
        5,
        "nice value added to decode, inference and model-loading threads (Linux), so the "
        "event loop that admits and refuses calls is served first under overload; 0 = off",
    )

    def problems(self) -> list[str]:
        found = []
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            found.append(
                f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}"
            )
        for name in ("intra_op_threads", "inter_op_threads", "inference_workers"):
            if getattr(self, name) < 0:
                found.append(f"{name} must be >= 0 (0 = automatic)")
        if self.preprocess_workers < 0:
            found.append("preprocess_workers must be >= 0 (0 = automatic)")
        if not 0 <= self.worker_thread_nice <= 19:
            found.append("worker_thread_nice must be 0..19 (0 = same priority as the loop)")
        return found


@dataclass(frozen=True)
class AdmissionSettings:
    """What the gateway takes on at once, how requests are batched, what an input may be."""

    max_queue_size: int = setting(128, "requests admitted per model before RESOURCE_EXHAUSTED")
    max_concurrent_rpcs: int = setting(
        0,
        "calls the gRPC core hands to Python at once; beyond it, calls are refused with "
        "RESOURCE_EXHAUSTED in C before they cost memory or event-loop time "
        "(0 = max_queue_size + 64)",
    )
    batching: bool = setting(
        True,
        "dynamic batching for models with a dynamic batch axis (true/false; a manifest's "
        "`batching` section overrides it per model)",
    )
    max_batch_size: int = setting(8, "rows per batched session.run at most")
    max_queue_delay_us: int = setting(
        500,
        "longest a request waits for others to share its batch, in microseconds (only "
        "while more requests for the model are on their way)",
    )
    inline_threshold_us: int = setting(
        300,
        "models whose measured preprocess + inference CPU time stays under this run on the "
        "event loop instead of the thread pools (0 = never)",
    )
    max_image_pixels: int = setting(
        40_000_000, "largest decoded image, in pixels (decompression-bomb guard)"
    )
    memory_budget_bytes: int = setting(
        0,
        "bytes that request payloads, decoded images and model inputs/outputs of all calls "
        "in flight may hold together; a call that does not fit is refused at once with "
        "RESOURCE_EXHAUSTED (0 = memory_budget_percent of the board's memory or cgroup "
        "limit, per worker, kept within 64 MiB..4 GiB)",
    )
    memory_budget_percent: int = setting(
        25, "share of the board's memory the automatic memory budget takes, percent"
    )

    def problems(self) -> list[str]:
        found = []
        if self.max_queue_size < 1:
            found.append("max_queue_size must be >= 1")
        if self.max_concurrent_rpcs < 0:
            found.append("max_concurrent_rpcs must be >= 0 (0 = automatic)")
        if not 1 <= self.max_batch_size <= 1024:
            found.append("max_batch_size must be 1..1024")
        if not 0 <= self.max_queue_delay_us <= 1_000_000:
            found.append("max_queue_delay_us must be 0..1000000")
        if not 0 <= self.inline_threshold_us <= 100_000:
            found.append("inline_threshold_us must be 0..100000")
        if self.max_image_pixels < 1:
            found.append("max_image_pixels must be >= 1")
        if self.memory_budget_bytes < 0:
            found.append("memory_budget_bytes must be >= 0 (0 = automatic)")
        if not 1 <= self.memory_budget_percent <= 90:
            found.append("memory_budget_percent must be 1..90")
        return found


@dataclass(frozen=True)
class LifecycleSettings:
    """Which versions serve, what a pushed bundle must prove, when a version is rolled back."""

    default_model: str = setting(
        "",
        "model used when a request's model_name is empty (default: the only model, or the "
        "first by name)",
    )
    pinned_versions: Mapping[str, str] = setting(
        {},
        "versions to activate at start-up, as NAME=VERSION[,NAME=VERSION] (default: the "
        "highest version of each model)",
    )
    trusted_keys: tuple[Path, ...] = setting(
        (),
        "comma-separated Ed25519 public key files (or folders of *.pub) whose signatures "
        "pushed bundles must carry",
    )
    allow_unsigned: bool = setting(
        False, "accept unsigned bundles when no signature is present (development only)"
    )
    trust_root: Path | None = setting(
        None,
        "Ed25519 public key of the offline root that certifies signing keys (keyring); when "
        "set, bundles need signed targets metadata (sequence, expiry) and legacy signatures "
        "are refused (docs/security.md)",
    )
    max_bundle_bytes: int = setting(512 * 1024 * 1024, "largest bundle ModelUpdate accepts")
    disk_quota_bytes: int = setting(
        4 * 1024 * 1024 * 1024, "most bytes the model root may hold, uploads included"
    )
    keep_versions: int = setting(
        3,
        "versions kept on disk per model (the active one and the rollback target are never "
        "removed)",
    )
    update_idle_timeout_seconds: float = setting(
        30.0, "a ModelUpdate stream silent this long is aborted"
    )
    rollback_window_seconds: float = setting(
        60.0, "watch a new version this long after activation (0 = off)"
    )
    rollback_min_requests: int = setting(
        20, "requests a new version must serve before it is judged"
    )
    rollback_max_fault_rate_increase: float = setting(
        0.05,
        "roll back when the model-fault rate exceeds the previous version's by more than "
        "this (0.05 = 5 points)",
    )
    rollback_max_p99_ratio: float = setting(
        2.0,
        "roll back when p99 latency exceeds the previous version's by this factor (and by "
        "more than 5 ms)",
    )
    shadow_sample_rate: float = setting(
        0.1, "share of live requests also run on a shadow version, 0..1"
    )

    def problems(self) -> list[str]:
        found = []
        if self.keep_versions < 1:
            found.append("keep_versions must be >= 1")
        if not 0 <= self.shadow_sample_rate <= 1:
            found.append("shadow_sample_rate must be within 0..1")
        if self.max_bundle_bytes < 1 or self.disk_quota_bytes < 1:
            found.append("max_bundle_bytes and disk_quota_bytes must be positive")
        return found


Section = (
    ServerSettings
    | RuntimeSettings
    | AdmissionSettings
    | LifecycleSettings
    | CloudSettings
    | FeedbackSettings
)
SECTIONS: dict[str, type[Section]] = {
    "server": ServerSettings,
    "runtime": RuntimeSettings,
    "admission": AdmissionSettings,
    "lifecycle": LifecycleSettings,
    "cloud": CloudSettings,
    "feedback": FeedbackSettings,
}
