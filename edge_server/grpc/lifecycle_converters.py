"""Protobuf <-> lifecycle domain conversions for edge.v1.ModelService."""

from __future__ import annotations

import time

from edge_contracts.proto.edge.v1 import model_pb2, types_pb2
from edge_contracts.shadow_evidence import evidence_to_proto
from edge_server.catalogue.serving import ModelSlot, ServingCatalogue
from edge_server.inference.shadow import ShadowRunner
from edge_server.lifecycle.ledger import Ledger, VersionRecord, VersionState
from edge_server.lifecycle.updater import Mode, Progress, Stage, UpdateHeader
from edge_server.wire import edge_v1 as converters

_MODES = {
    model_pb2.ACTIVATION_MODE_UNSPECIFIED: Mode.ACTIVATE,
    model_pb2.ACTIVATION_MODE_ACTIVATE: Mode.ACTIVATE,
    model_pb2.ACTIVATION_MODE_STAGE: Mode.STAGE,
    model_pb2.ACTIVATION_MODE_SHADOW: Mode.SHADOW,
}
_STAGES = {stage: getattr(model_pb2, f"UPDATE_STAGE_{stage.value}") for stage in Stage}
_VERSION_STATES = {
    VersionState.ACTIVE: types_pb2.MODEL_STATE_READY,
    VersionState.STAGED: types_pb2.MODEL_STATE_STAGED,
    VersionState.SHADOW: types_pb2.MODEL_STATE_SHADOW,
    VersionState.INACTIVE: types_pb2.MODEL_STATE_UNLOADED,
    VersionState.REJECTED: types_pb2.MODEL_STATE_REJECTED,
    VersionState.ROLLED_BACK: types_pb2.MODEL_STATE_ROLLED_BACK,
}


def to_update_header(header: model_pb2.ModelUpdateHeader) -> UpdateHeader:
    return UpdateHeader(
        name=header.model_name,
        version=header.model_version,
        size=header.bundle_size,
        sha256=header.bundle_sha256.lower(),
        mode=_MODES.get(header.activation_mode, Mode.ACTIVATE),
        source=header.source,
        allow_older=header.allow_older,
    )


def to_update_response(
    progress: Progress, header: UpdateHeader, resume_offset: int
) -> model_pb2.ModelUpdateResponse:
    return model_pb2.ModelUpdateResponse(
        stage=_STAGES[progress.stage],
        bytes_received=progress.bytes_received,
        resume_offset=resume_offset,
        reason=progress.reason,
        model_name=header.name,
        model_version=header.version,
    )


def _version_info(
    slot: ModelSlot,
    version: str,
    record: VersionRecord | None,
    sha256: str,
    size: int,
    shadow: ShadowRunner | None,
) -> model_pb2.ModelVersionInfo:
    active = slot.active
    is_active = active is not None and active.version == version
    standby = slot.standby if slot.standby and slot.standby.model.version == version else None
    reason = record.reason if record else ""
    if is_active:
        state = types_pb2.MODEL_STATE_READY
    elif standby is not None:  # loaded, answers nobody, ready for an instant rollback
        state = types_pb2.MODEL_STATE_READY
        reason = f"kept loaded for an instant rollback until {_utc(standby.until)}"
    elif record is not None:
        state = _VERSION_STATES[record.state]
        if record.state is VersionState.ACTIVE:  # the ledger lags a manual file copy
            state = types_pb2.MODEL_STATE_UNLOADED
    else:
        state = types_pb2.MODEL_STATE_UNLOADED
    info = model_pb2.ModelVersionInfo(
        version=version,
        state=state,
        sha256=record.sha256 if record and record.sha256 else sha256,
        size_bytes=size or (record.size_bytes if record else 0),
        source=record.source if record and record.source else "disk",
        reason=reason,
    )
    if record and record.received_at:
        info.received_at.CopyFrom(converters.timestamp(record.received_at))
    if record and record.activated_at:
        info.activated_at.CopyFrom(converters.timestamp(record.activated_at))
    elif is_active and active is not None:
        info.activated_at.CopyFrom(converters.timestamp(active.loaded_at))
    tally = shadow.tally(slot.name, version) if shadow else None
    if tally is not None:
        info.shadow_compared = tally.compared
        info.shadow_agreement = tally.agreement
        info.shadow_evidence.CopyFrom(evidence_to_proto(tally.evidence()))
    return info


def utc_offset_seconds() -> int:
    """The gateway's UTC offset now (DST included): maintenance windows are in local time."""
    return time.localtime().tm_gmtoff


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def to_model_info_full(
    slot: ModelSlot, manager: ServingCatalogue, ledger: Ledger, shadow: ShadowRunner | None
) -> model_pb2.ModelInfo:
    """ModelInfo with every version on disk plus rejected ones from the ledger."""
    book = ledger.load(slot.name)
    on_disk = {v.version: v for v in manager.store.versions(slot.name)}
    versions = []
    for version, found in on_disk.items():
        versions.append(
            _version_info(
                slot, version, book.record(version), found.sha256(), found.size_bytes(), shadow
            )
        )
    for version, record in sorted(book.records.items()):
        if version not in on_disk and record.state is VersionState.REJECTED:
            versions.append(_version_info(slot, version, record, "", 0, shadow))
    info = converters.to_model_info(slot, versions, is_default=slot.name == manager.default_model)
    info.rollback_target = book.rollback_target
    info.shadow_version = slot.shadow.version if slot.shadow else ""
    return info
