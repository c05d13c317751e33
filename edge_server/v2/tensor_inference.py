"""Inference on named tensors (the V2 ModelInfer path): check, prepare, run, select.

Every input the model declares must arrive once, with the model's element type and
a shape its signature accepts. Two kinds of BYTES input are understood: a string
input of the model (``tensor(string)``) takes them as UTF-8 text, and the image
input of a model whose manifest gives preprocessing takes them as encoded images,
one per batch row, decoded and preprocessed like Predict's ``image``.

Statistics are recorded here, as Predict records them, so V2 ModelStatistics and the
Prometheus metrics count the same requests; a shadow version (lifecycle) sees V2
traffic too.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_server.catalogue.serving import ServingModel
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import InferenceFailed, InvalidInput
from edge_server.inference.footprint import PAYLOAD_COPIES, output_bytes
from edge_server.inference.predictor import Predictor, StageTimings
from edge_server.v2.datatypes import describe_v2, v2_datatype


@dataclass(frozen=True)
class NamedTensor:
    """One input or output; BYTES elements are an ``object`` array of bytes (or str)."""

    name: str
    array: np.ndarray


@dataclass(frozen=True)
class TensorRequest:
    model_name: str
    model_version: str
    inputs: tuple[NamedTensor, ...]
    output_names: tuple[str, ...] = ()  # empty = every output, in the model's order
    deadline: float | None = None  # time.monotonic() value


@dataclass(frozen=True)
class TensorResult:
    model_name: str
    model_version: str
    outputs: tuple[NamedTensor, ...]
    timings: StageTimings


def _us(seconds: float) -> int:
    return max(0, int(seconds * 1_000_000))


def _inputs_line(model: ServingModel) -> str:
    return "; ".join(describe_v2(spec) for spec in model.inputs)


def match_inputs(model: ServingModel, inputs: Sequence[NamedTensor]) -> list[TensorSpec]:
    """The spec each input feeds, in request order; every model input exactly once."""
    specs = {spec.name: spec for spec in model.inputs}
    seen: set[str] = set()
    matched = []
    for index, tensor in enumerate(inputs):
        if tensor.name in seen:
            raise InvalidInput(
                f"input {tensor.name!r} appears twice in the request", f"inputs[{index}].name"
            )
        spec = specs.get(tensor.name)
        if spec is None:
            raise InvalidInput(
                f"{tensor.name!r} is not an input of model {model.name!r}; its inputs are "
                f"{_inputs_line(model)}",
                f"inputs[{index}].name",
            )
        seen.add(tensor.name)
        matched.append(spec)
    missing = [describe_v2(spec) for spec in model.inputs if spec.name not in seen]
    if missing:
        raise InvalidInput(
            f"model {model.name!r} also needs input(s) {'; '.join(missing)}", "inputs"
        )
    return matched


def check_tensor(model: ServingModel, spec: TensorSpec, array: np.ndarray) -> None:
    """Element type and shape of a tensor against the input it feeds."""
    if array.dtype != np.dtype(spec.dtype):
        raise InvalidInput(
            f"input {spec.name!r} of model {model.name!r} is {describe_v2(spec)}; the request "
            f"sent {v2_datatype(array.dtype.name)}",
            f"{spec.name}.datatype",
        )
    if not spec.accepts_shape(tuple(array.shape)):
        raise InvalidInput(
            f"input {spec.name!r} has shape {list(array.shape)}, which does not fit "
            f"{describe_v2(spec)} of model {model.name!r} (-1 = any size)",
            f"{spec.name}.shape",
        )


def select_outputs(model: ServingModel, names: Sequence[str]) -> list[int]:
    """Indexes of the requested outputs in the session's output list."""
    positions = {spec.name: i for i, spec in enumerate(model.outputs)}
    if not names:
        return list(range(len(model.outputs)))
    if len(set(names)) != len(names):
        raise InvalidInput("an output is requested twice", "outputs")
    unknown = [name for name in names if name not in positions]
    if unknown:
        available = "; ".join(describe_v2(spec) for spec in model.outputs)
        raise InvalidInput(
            f"requested output {unknown[0]!r} is not an output of model {model.name!r}; its "
            f"outputs are {available}",
            "outputs",
        )
    return [positions[name] for name in names]


def _as_text(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """BYTES elements for a string input: ONNX Runtime wants str, not bytes."""
    text = np.empty(array.shape, dtype=object)
    flat_in, flat_out = array.reshape(-1), text.reshape(-1)
    for i, element in enumerate(flat_in):
        try:
            flat_out[i] = element.decode("utf-8") if isinstance(element, bytes) else str(element)
        except UnicodeDecodeError:
            raise InvalidInput(
                f"input {spec.name!r} element {i} is not UTF-8 text", f"{spec.name}.contents"
            ) from None
    return text


class TensorInference:
    """Runs V2 inference requests through the predictor's admission, pools and statistics."""

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor

    async def infer(self, request: TensorRequest) -> TensorResult:
        received = time.perf_counter()
        admission = self._predictor.admit(
            request.model_name,
            request.model_version,
            request.deadline,
            lambda model: self._footprint(model, request),
        )
        with admission as model:
            try:
                result = await self._infer_admitted(model, request, received)
            except (Exception, asyncio.CancelledError) as exc:
                # A cancelled call (deadline passed, client gone) counts as a failure too.
                self._predictor.statistics.record_failure(
                    model.name,
                    model.version,
                    time.perf_counter() - received,
                    model_fault=isinstance(exc, InferenceFailed),
                )
                raise
        t = result.timings
        first = request.inputs[0].array if request.inputs else None
        self._predictor.statistics.record_success(
            model.name,
            model.version,
            rows=int(first.shape[0]) if first is not None and first.ndim > 0 else 1,
            total_s=t.total_us / 1e6,
            preprocess_s=t.preprocess_us / 1e6,
            queue_s=t.queue_us / 1e6,
            infer_s=t.inference_us / 1e6,
            postprocess_s=t.postprocess_us / 1e6,
        )
        return result

    def _footprint(self, model: ServingModel, request: TensorRequest) -> int:
        """Bytes the call holds: its inputs as sent, decoded images (all rows decode at
        once), text copies, and the model outputs (never raises: checks come later)."""
        total, rows = 0, 1
        for tensor in request.inputs:
            array = tensor.array
            if array.ndim > 0:
                rows = max(rows, int(array.shape[0]))
            if array.dtype != object:
                total += PAYLOAD_COPIES * array.nbytes  # the message and the array
                continue
            for element in array.reshape(-1):
                if isinstance(element, bytes):
                    total += self._predictor.image_footprint(model, element)
                    total += 0 if model.image_plan is not None else len(element)  # str copy
        return total + output_bytes(model.outputs, rows)

    async def _infer_admitted(
        self, model: ServingModel, request: TensorRequest, received: float
    ) -> TensorResult:
        wanted = select_outputs(model, request.output_names)
        specs = match_inputs(model, request.inputs)
        feeds = {}
        for spec, tensor in zip(specs, request.inputs, strict=True):
            feeds[spec.name] = await self._feed(model, spec, tensor.array)
        prepared = time.perf_counter()
        run = await self._predictor.run(model, feeds, request.deadline)
        ran = time.perf_counter()
        if self._predictor.shadow is not None and run.outputs:
            self._predictor.shadow.offer(model, feeds, run.outputs[0])
        outputs = tuple(NamedTensor(model.outputs[i].name, run.outputs[i]) for i in wanted)
        finished = time.perf_counter()
        return TensorResult(
            model_name=model.name,
            model_version=model.version,
            outputs=outputs,
            timings=StageTimings(
                preprocess_us=_us(prepared - received),
                queue_us=_us(run.queue_s),
                inference_us=_us(run.inference_s),
                postprocess_us=_us(finished - ran),
                total_us=_us(finished - received),
            ),
        )

    async def _feed(self, model: ServingModel, spec: TensorSpec, array: np.ndarray) -> np.ndarray:
        if array.dtype == object and spec.dtype == "object":
            check_tensor(model, spec, array)
            return _as_text(spec, array)
        if array.dtype == object:
            array = await self._images(model, spec, array)
        check_tensor(model, spec, array)
        return array

    async def _images(self, model: ServingModel, spec: TensorSpec, array: np.ndarray) -> np.ndarray:
        """Encoded images (BYTES [N] or [N, 1]) -> the model's input batch [N, ...]."""
        if model.image_plan is None:
            raise InvalidInput(
                f"input {spec.name!r} is BYTES, but model {model.name!r} cannot take encoded "
                f"images: {model.image_plan_error}; send {describe_v2(spec)} instead",
                f"{spec.name}.datatype",
            )
        if array.ndim not in (1, 2) or (array.ndim == 2 and array.shape[1] != 1):
            raise InvalidInput(
                f"input {spec.name!r} holds encoded images: its shape must be [N] or [N, 1] "
                f"(one image per batch row), not {list(array.shape)}",
                f"{spec.name}.shape",
            )
        if math.prod(array.shape) == 0:
            raise InvalidInput(f"input {spec.name!r} holds no image", f"{spec.name}.shape")

        async def decode(index: int, element: object) -> np.ndarray:
            if not isinstance(element, bytes):
                raise InvalidInput(f"input {spec.name!r} element {index} is not bytes")
            try:
                return await self._predictor.preprocess(model, element)
            except InvalidInput as exc:
                raise InvalidInput(
                    f"input {spec.name!r} element {index}: {exc}", f"{spec.name}.contents"
                ) from None

        rows = await asyncio.gather(*(decode(i, e) for i, e in enumerate(array.reshape(-1))))
        return np.concatenate(rows, axis=0)
