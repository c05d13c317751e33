"""Domain facts -> V2 metadata, model configuration, statistics and index messages."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_contracts.proto.inference import model_config_pb2 as config_pb
from edge_server.catalogue.on_disk import MODEL_FILE
from edge_server.catalogue.serving import ServingModel
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.inference.statistics import Duration, VersionStatistics
from edge_server.v2 import repository_parameters
from edge_server.v2.datatypes import v2_datatype
from edge_server.v2.model_repository import IndexEntry
from edge_server.v2.server_facts import BACKEND, PLATFORM
from edge_server.v2.server_facts import EXTENSIONS as EXTENSIONS
from edge_server.v2.server_facts import SERVER_NAME as SERVER_NAME
from edge_server.v2.shared_memory import Region

_CONFIG_TYPES = {
    "BOOL": config_pb.TYPE_BOOL,
    "UINT8": config_pb.TYPE_UINT8,
    "UINT16": config_pb.TYPE_UINT16,
    "UINT32": config_pb.TYPE_UINT32,
    "UINT64": config_pb.TYPE_UINT64,
    "INT8": config_pb.TYPE_INT8,
    "INT16": config_pb.TYPE_INT16,
    "INT32": config_pb.TYPE_INT32,
    "INT64": config_pb.TYPE_INT64,
    "FP16": config_pb.TYPE_FP16,
    "FP32": config_pb.TYPE_FP32,
    "FP64": config_pb.TYPE_FP64,
    "BYTES": config_pb.TYPE_STRING,
    "BF16": config_pb.TYPE_BF16,
}
_FORMATS = {"NCHW": config_pb.ModelInput.FORMAT_NCHW, "NHWC": config_pb.ModelInput.FORMAT_NHWC}


def _tensor_metadata(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=v2_datatype(spec.dtype), shape=list(spec.shape)
    )


def to_model_metadata(model: ServingModel, versions: Sequence[str]) -> pb.ModelMetadataResponse:
    return pb.ModelMetadataResponse(
        name=model.name,
        versions=list(versions),
        platform=PLATFORM,
        inputs=[_tensor_metadata(spec) for spec in model.inputs],
        outputs=[_tensor_metadata(spec) for spec in model.outputs],
    )


def _config_type(spec: TensorSpec) -> config_pb.DataType.ValueType:
    return _CONFIG_TYPES.get(v2_datatype(spec.dtype), config_pb.TYPE_INVALID)


def to_model_config(model: ServingModel) -> config_pb.ModelConfig:
    """A Triton-compatible summary: signature, platform, and gateway facts as parameters."""
    layout = model.manifest.preprocessing.layout if model.manifest.preprocessing else ""
    image_format = _FORMATS.get(layout) if model.image_plan is not None else None
    inputs = [
        config_pb.ModelInput(
            name=spec.name,
            data_type=_config_type(spec),
            format=image_format or config_pb.ModelInput.FORMAT_NONE,
            dims=list(spec.shape),
        )
        for spec in model.inputs
    ]
    outputs = [
        config_pb.ModelOutput(name=spec.name, data_type=_config_type(spec), dims=list(spec.shape))
        for spec in model.outputs
    ]
    image_input = "true" if model.image_plan is not None else f"false: {model.image_plan_error}"
    parameters = {
        "version": model.version,
        "image_input": image_input,
        "labels": str(len(model.manifest.labels)),
        "manifest": json.dumps(model.manifest.to_dict(), sort_keys=True),
    }
    return config_pb.ModelConfig(
        name=model.name,
        platform=PLATFORM,
        backend=BACKEND,
        max_batch_size=0,
        input=inputs,
        output=outputs,
        default_model_filename=MODEL_FILE,
        parameters={k: config_pb.ModelParameter(string_value=v) for k, v in parameters.items()},
    )


def _duration(value: Duration) -> pb.StatisticDuration:
    return pb.StatisticDuration(count=value.count, ns=value.ns)


def to_model_statistics(name: str, version: str, stats: VersionStatistics) -> pb.ModelStatistics:
    return pb.ModelStatistics(
        name=name,
        version=version,
        last_inference=stats.last_inference_ms,
        inference_count=stats.inference_count,
        execution_count=stats.execution_count,
        inference_stats=pb.InferStatistics(
            success=_duration(stats.success),
            fail=_duration(stats.fail),
            queue=_duration(stats.queue),
            compute_input=_duration(stats.compute_input),
            compute_infer=_duration(stats.compute_infer),
            compute_output=_duration(stats.compute_output),
        ),
    )


def to_index(entries: Sequence[IndexEntry]) -> pb.RepositoryIndexResponse:
    return pb.RepositoryIndexResponse(
        models=[
            pb.RepositoryIndexResponse.ModelIndex(
                name=e.name, version=e.version, state=e.state, reason=e.reason
            )
            for e in entries
        ]
    )


def _parameter_values(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, value in parameters.items():
        kind = value.WhichOneof("parameter_choice")
        values[key] = getattr(value, kind) if kind else None
    return values


def load_version(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> str:
    """The version a RepositoryModelLoad asks for (edge_server/v2/repository_parameters.py)."""
    return repository_parameters.load_version(_parameter_values(parameters))


def check_unload_parameters(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> None:
    repository_parameters.check_unload(parameters)


def to_shared_memory_status(regions: Sequence[Region]) -> pb.SystemSharedMemoryStatusResponse:
    response = pb.SystemSharedMemoryStatusResponse()
    for region in regions:
        response.regions[region.name].CopyFrom(
            pb.SystemSharedMemoryStatusResponse.RegionStatus(
                name=region.name, key=region.key, offset=region.offset, byte_size=region.byte_size
            )
        )
    return response
