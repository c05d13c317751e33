"""Human-readable and JSON renderings of results for the ``edge-client`` CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import grpc

from edge_client.errors import EdgeClientError
from edge_client.push import PushResult
from edge_client.results import HealthReport, ModelSummary, Prediction

__all__ = [
    "error_message",
    "health_lines",
    "model_lines",
    "models_table",
    "prediction_lines",
    "to_json",
]

# Codes that usually mean "nothing answered at that address": name the address.
_CONNECTION_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# How the gRPC core words "no connection" (a gateway's own UNAVAILABLE, e.g. a model
# still loading, says something else and gets no advice about the address).
_TLS_FAILURE = ("andshake", "Hostname Verification", "security handshaker", "SSL_ERROR")
_NO_CONNECTION = (
    "failed to connect",
    "Failed to connect",
    "DNS resolution failed",
    "errors resolving",
    "Connection refused",
    "connections to all backends failing",
)


def to_json(document: Any) -> str:
    """One JSON document, indented for people and stable for tools."""
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False)


def prediction_lines(source: str, prediction: Prediction) -> list[str]:
    """``<source>  class=3 label=3 confidence=0.9876 model=digits:1 (1.23 ms)`` + top-k."""
    p = prediction
    head = (
        f"{source}  class={p.class_id} label={p.label or '-'} confidence={p.confidence:.4f} "
        f"model={p.model_name}:{p.model_version} ({p.timings.total_ms:.2f} ms)"
    )
    lines = [head]
    for rank, score in enumerate(p.top_k, start=1):
        lines.append(
            f"    {rank}. class={score.class_id} label={score.label or '-'} score={score.score:.4f}"
        )
    return lines


def health_lines(report: HealthReport) -> list[str]:
    gateway = report.gateway_id or "gateway"
    version = f" {report.software_version}" if report.software_version else ""
    lines = [
        f"{gateway}{version}: {report.status}, up {_duration(report.uptime_seconds)}, "
        f"default model {report.default_model or '-'}"
    ]
    for m in report.models:
        line = (
            f"  {m.name}  state={m.state} active={m.active_version or '-'} "
            f"versions={','.join(m.versions_on_disk) or '-'}"
        )
        if m.last_error:
            line += f"  last_error={m.last_error!r}"
        if m.last_rollback:
            line += f"  last_rollback={m.last_rollback!r}"
        lines.append(line)
    if not report.models:
        lines.append("  (no models)")
    return lines


def models_table(models: Sequence[ModelSummary]) -> list[str]:
    """One row per model version; ``*`` marks the active version."""
    rows = [("MODEL", "VERSION", "STATE", "ACTIVE", "SIZE", "SOURCE", "NOTE")]
    for m in models:
        name = f"{m.name} (default)" if m.is_default else m.name
        if not m.versions:
            rows.append((name, "-", m.state, "", "", "", ""))
        for v in m.versions:
            note = v.reason
            if v.version == m.shadow_version:
                note = f"shadow, agreement {v.shadow_agreement:.1%} of {v.shadow_compared}"
            elif v.version == m.rollback_target and not note:
                note = "rollback target"
            active = "*" if v.version == m.active_version else ""
            rows.append((name, v.version, v.state, active, _size(v.size_bytes), v.source, note))
    if len(rows) == 1:
        return ["no models"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append("  ".join(cells).rstrip())
    return lines


def model_lines(model: ModelSummary) -> list[str]:
    """A model after activate or rollback: what is active now."""
    lines = [
        f"{model.name}: active={model.active_version or '-'} state={model.state}"
        + (f" rollback_target={model.rollback_target}" if model.rollback_target else "")
    ]
    lines.extend(f"  {v.version}  {v.state}" for v in model.versions)
    return lines


def error_message(err: EdgeClientError, target: str) -> str:
    """``<CODE>: <details>``, naming the target when the gateway may be unreachable."""
    text = f"{err.code.name}: {err.details}"
    if err.code not in _CONNECTION_CODES:
        return text
    if any(phrase in err.details for phrase in _TLS_FAILURE):
        return (
            f"{text} (target: {target}; the TLS handshake failed: use --ca-cert only when the "
            "gateway runs with --tls-cert, with the CA that issued its certificate, and "
            "--server-name when the target is not the name in it)"
        )
    if "Socket closed" in err.details:
        return f"{text} (target: {target}; if the gateway runs with TLS, pass --ca-cert)"
    if any(phrase in err.details for phrase in _NO_CONNECTION):
        return (
            f"{text} (target: {target}; start edge-server there, or name the gateway with "
            "--target HOST:PORT or EDGE_TARGET)"
        )
    return text + f" (target: {target})"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class ProgressBar:
    """A one-line progress bar on stderr (no dependency): bytes sent, then each stage."""

    def __init__(self, width: int = 30) -> None:
        self._width = width
        self._last = ""

    def update(self, stage: str, done: int, total: int) -> None:
        filled = int(self._width * done / total) if total else self._width
        line = f"\r{stage:<10} [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total} bytes"
        if line != self._last:
            sys.stderr.write(line)
            sys.stderr.flush()
            self._last = line

    def close(self) -> None:
        if self._last:
            sys.stderr.write("\n")
            sys.stderr.flush()


def push_line(result: PushResult) -> str:
    verdict = f"{result.model_name}:{result.model_version} {result.stage}"
    sent = (
        f"(sent {result.bytes_sent} of {result.bundle_bytes} bytes, {result.attempts} attempt(s))"
    )
    return f"{verdict} {sent}" + (f": {result.reason}" if result.reason else "")
