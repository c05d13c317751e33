"""``Settings``: the six sections together, the checks that span them, derived values."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_server.settings.fields import default_cpu_count
from edge_server.settings.link_sections import CloudSettings, FeedbackSettings
from edge_server.settings.sections import (
    SECTIONS,
    AdmissionSettings,
    LifecycleSettings,
    RuntimeSettings,
    ServerSettings,
)


def setting_fields() -> Iterator[tuple[str, Field[Any]]]:
    """(section name, field) for every setting, in --help order."""
    for section, kind in SECTIONS.items():
        for f in fields(kind):
            yield section, f


SECTION_OF: dict[str, str] = {f.name: section for section, f in setting_fields()}
FIELD_HELP: dict[str, str] = {f.name: f.metadata["help"] for _, f in setting_fields()}


@dataclass(frozen=True)
class Settings:
    """Gateway configuration: ``settings.admission.max_queue_size`` and so on."""

    server: ServerSettings = field(default_factory=ServerSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)

    def __post_init__(self) -> None:
        problems = [p for name in SECTIONS for p in getattr(self, name).problems()]
        if self.server.workers > 1 and self.cloud.orchestrator:
            problems.append(
                "workers > 1 cannot be combined with --orchestrator yet: feedback and "
                "pull mode run in the primary process and would miss the other workers "
                "(leave --workers at 0, automatic, or set 1)"
            )
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_values(cls, **values: Any) -> Settings:
        """Settings from flat field names (``grpc_port=0``), each put in its section."""
        unknown = sorted(set(values) - set(SECTION_OF))
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        grouped: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for name, value in values.items():
            grouped[SECTION_OF[name]][name] = value
        return cls(
            server=ServerSettings(**grouped["server"]),
            runtime=RuntimeSettings(**grouped["runtime"]),
            admission=AdmissionSettings(**grouped["admission"]),
            lifecycle=LifecycleSettings(**grouped["lifecycle"]),
            cloud=CloudSettings(**grouped["cloud"]),
            feedback=FeedbackSettings(**grouped["feedback"]),
        )

    def values(self) -> dict[str, Any]:
        """Every setting by its flat name."""
        return {f.name: getattr(getattr(self, s), f.name) for s, f in setting_fields()}

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (flat names), checked like any other."""
        return Settings.from_values(**{**self.values(), **changes})

    @property
    def effective_workers(self) -> int:
        """Gateway processes sharing the gRPC port. 0 (automatic) is resolved by
        `edge-server` at start from the cores and the memory (edge_server/workers/layout.py);
        a Gateway built from unresolved settings (the Python API, tests) is one process."""
        return self.server.workers or 1

    @property
    def cores_per_worker(self) -> int:
        """The cores each gateway process sizes its thread pools for: all of them, also
        with several workers. A process may have the board to itself while the others
        idle: the primary alone serves the HTTP port, and the kernel spreads gRPC
        connections unevenly; when all are busy, the scheduler shares the cores anyway
        (pool threads are below the event loops, worker_thread_nice)."""
        return default_cpu_count()

    @property
    def effective_inference_workers(self) -> int:
        """Concurrent session.run calls: one per core by default."""
        return self.runtime.inference_workers or self.cores_per_worker

    @property
    def effective_max_concurrent_rpcs(self) -> int:
        """Hard cap on calls in Python; headroom above one model's queue for health and
        management calls."""
        return self.admission.max_concurrent_rpcs or self.admission.max_queue_size + 64

    @property
    def effective_intra_op_threads(self) -> int:
        """ONNX Runtime threads per run: cores shared among the inference workers."""
        if self.runtime.intra_op_threads:
            return self.runtime.intra_op_threads
        return max(1, self.cores_per_worker // self.effective_inference_workers)

    @property
    def effective_preprocess_workers(self) -> int:
        """Image decode threads (Pillow releases the GIL): one per core by default."""
        return self.runtime.preprocess_workers or self.cores_per_worker

    @property
    def effective_management_token(self) -> str:
        """The token from --management-token, else from --management-token-file."""
        return _secret(self.server.management_token, self.server.management_token_file)

    @property
    def effective_gateway_id(self) -> str:
        return self.server.gateway_id or os.uname().nodename

    @property
    def effective_orchestrator_token(self) -> str:
        """The enrollment token: --orchestrator-enrollment-token(-file), else the older
        --orchestrator-token(-file)."""
        return _secret(
            self.cloud.orchestrator_enrollment_token,
            self.cloud.orchestrator_enrollment_token_file,
        ) or _secret(self.cloud.orchestrator_token, self.cloud.orchestrator_token_file)

    @property
    def orchestrator_identity_file(self) -> Path:
        """Where the gateway keeps the secret it enrolled for (mode 600)."""
        return Path(self.server.model_root) / ".orchestrator-identity.json"

    @property
    def effective_feedback_db(self) -> Path:
        return self.feedback.feedback_db or Path(self.server.model_root) / ".feedback.sqlite3"


def _secret(value: str, file: Path | None) -> str:
    if value:
        return value
    if file is not None:
        return file.read_text(encoding="utf-8").strip()
    return ""
