"""What the request path needs to know about one model version, worked out once.

A ``ServingModel`` never changes, so its batching policy, its single tensor input
and whether uint8 pixels must be preprocessed for it are facts of the version: the
predictor keeps a ``RequestPlan`` per model name and rebuilds it when a request
arrives on another version object (a hot swap, a reload). A request keeps the
``ServingModel`` it was admitted on and gets that version's plan. Plans hold only a
weak reference to their model, so a swapped-out session is still released when its
last request finishes.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from edge_server.catalogue.serving import ServingModel
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import InvalidInput
from edge_server.inference.preprocessing import ImagePlan
from edge_server.scheduling.batching import BatchPolicy


@dataclass(frozen=True)
class BatchingDefaults:
    """Server-wide batching settings; a model's manifest `batching` section overrides them."""

    enabled: bool = True
    max_batch_size: int = 8
    max_queue_delay_us: int = 500


def batch_policy(model: ServingModel, defaults: BatchingDefaults) -> BatchPolicy | None:
    """The model's batching policy, or None when batching does not apply to it."""
    config = model.manifest.batching
    enabled = defaults.enabled if config is None or config.enabled is None else config.enabled
    if not enabled:
        return None
    if not all(spec.has_dynamic_batch for spec in (*model.inputs, *model.outputs)):
        return None  # rows can only be stacked and split along a dynamic batch axis
    if config is None:
        return BatchPolicy(defaults.max_batch_size, defaults.max_queue_delay_us)
    return BatchPolicy(
        config.max_batch_size, config.max_queue_delay_us, config.preferred_batch_sizes
    )


def validate_tensor(model: ServingModel, array: np.ndarray, name: str) -> str:
    """Check a tensor against the model's inputs; returns the input name it feeds."""
    inputs = model.inputs
    if len(inputs) != 1:
        names = ", ".join(spec.name for spec in inputs)
        raise InvalidInput(
            f"model {model.name!r} takes {len(inputs)} inputs ({names}); Predict carries "
            "one tensor, so use the V2 ModelInfer RPC for this model",
            field="tensor",
        )
    spec: TensorSpec = inputs[0]
    if name and name != spec.name:
        raise InvalidInput(
            f"tensor name {name!r} is not an input of model {model.name!r}; its input is "
            f"{spec.describe()}",
            field="tensor.name",
        )
    if array.dtype != np.dtype(spec.dtype):
        raise InvalidInput(
            f"tensor dtype {array.dtype} does not match input {spec.describe()}",
            field="tensor.dtype",
        )
    if not spec.accepts_shape(tuple(array.shape)):
        raise InvalidInput(
            f"tensor shape {list(array.shape)} does not fit input {spec.describe()} "
            "('?' = any size)",
            field="tensor.shape",
        )
    return spec.name


def image_plan(model: ServingModel) -> ImagePlan:
    """The model's image recipe; InvalidInput when it takes tensors only."""
    if model.image_plan is None:
        raise InvalidInput(
            f"model {model.name!r} cannot take images: {model.image_plan_error}; "
            "send a tensor instead",
            field="image",
        )
    return model.image_plan


_UINT8 = np.dtype(np.uint8)


def _numpy_dtype(name: str) -> np.dtype | None:
    try:
        return np.dtype(name)
    except TypeError:  # an ONNX type numpy has no name for: validate_tensor explains
        return None


class RequestPlan:
    """Per-version facts of one ServingModel (see the module docstring)."""

    __slots__ = (
        "_dtype",
        "_input",
        "_model",
        "_tail",
        "batching",
        "may_fuse",
        "policy",
        "takes_pixels",
    )

    def __init__(self, model: ServingModel, batching: BatchingDefaults) -> None:
        self._model = weakref.ref(model)
        self.batching = batching
        self.policy = batch_policy(model, batching)
        # Decode and run in one thread (InlinePolicy.fused) only where batching is a
        # server default, not a manifest's explicit choice, and runs on CPU alone: an
        # accelerator runs a batch for about the price of one row.
        config = model.manifest.batching
        self.may_fuse = (config is None or config.enabled is None) and model.session.providers == (
            "CPUExecutionProvider",
        )
        inputs = model.inputs
        # uint8 pixels for an image model whose own input is not uint8: preprocess them.
        self.takes_pixels = model.image_plan is not None and inputs[0].dtype != "uint8"
        self._input = inputs[0] if len(inputs) == 1 else None
        self._dtype = _numpy_dtype(inputs[0].dtype) if self._input is not None else None
        # Shapes with only a dynamic batch axis ([-1, 1, 28, 28]) are checked by one compare.
        shape = self._input.shape if self._input is not None else ()
        self._tail = shape[1:] if shape and shape[0] == -1 and -1 not in shape[1:] else None

    def serves(self, model: ServingModel, batching: BatchingDefaults) -> bool:
        return self._model() is model and self.batching is batching

    def is_pixel_tensor(self, tensor: np.ndarray) -> bool:
        return self.takes_pixels and tensor.dtype == _UINT8

    def tensor_input(self, model: ServingModel, array: np.ndarray, name: str) -> str:
        """``validate_tensor``, with the check of a well-formed tensor kept cheap."""
        spec = self._input
        if (
            spec is not None
            and (not name or name == spec.name)
            and array.dtype == self._dtype
            and self._tail is not None
            and array.ndim == len(spec.shape)
            and array.shape[1:] == self._tail
        ):
            return spec.name
        return validate_tensor(model, array, name)
