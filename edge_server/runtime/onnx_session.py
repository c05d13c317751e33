"""The only module that imports onnxruntime: load a model file into a session.

A ``LoadedSession`` is immutable once built; hot swaps replace the whole object (hot
swap by reference, CONTRIBUTING.md), so ``run`` may be called from several executor
threads at once (ONNX Runtime sessions are thread-safe for ``run``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge_server.catalogue.tensor_specs import TensorSpec, numpy_dtype_for_onnx
from edge_server.errors import ModelLoadError

logger = logging.getLogger(__name__)

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class SessionConfig:
    """ONNX Runtime knobs taken from Settings."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    execution_providers: tuple[str, ...] = ("CPUExecutionProvider",)


def choose_providers(wanted: tuple[str, ...]) -> list[str]:
    """Keep the wanted providers this build has, in order; CPU is always last resort."""
    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available]
    skipped = [p for p in wanted if p not in available]
    if skipped:
        logger.warning(
            "execution providers not available in this onnxruntime build, skipped: %s",
            ", ".join(skipped),
        )
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _specs(args: list[ort.NodeArg]) -> tuple[TensorSpec, ...]:
    specs = []
    for arg in args:
        dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape or ())
        specs.append(TensorSpec(arg.name, numpy_dtype_for_onnx(arg.type), dims))
    return tuple(specs)


class LoadedSession:
    """An ONNX Runtime session plus the signature read from the model file."""

    def __init__(self, model_path: Path, config: SessionConfig) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.intra_op_threads
        options.inter_op_num_threads = config.inter_op_threads
        options.graph_optimization_level = _OPT_LEVELS[config.graph_optimization]
        options.log_severity_level = 3  # errors only: ORT warnings go to stderr otherwise
        try:
            self._session = ort.InferenceSession(
                str(model_path),
                sess_options=options,
                providers=choose_providers(config.execution_providers),
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... classes
            raise ModelLoadError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        self.path = model_path
        self.inputs = _specs(self._session.get_inputs())
        self.outputs = _specs(self._session.get_outputs())
        self.providers = tuple(self._session.get_providers())
        self._output_names = [spec.name for spec in self.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Blocking inference; call it from an executor thread, never the event loop."""
        outputs: list[np.ndarray] = self._session.run(self._output_names, feeds)
        return outputs
