"""Per-version facts the request path caches: the quick tensor check agrees with the full
one, and a plan follows the ServingModel object without keeping it alive."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from edge_contracts.manifest import Manifest, Preprocessing
from edge_server.catalogue.serving import ServingModel
from edge_server.catalogue.tensor_specs import TensorSpec
from edge_server.errors import InvalidInput
from edge_server.inference.preprocessing import plan_image_input
from edge_server.inference.request_plan import BatchingDefaults, RequestPlan, validate_tensor


class FakeSession:
    def __init__(self, inputs: tuple[TensorSpec, ...]) -> None:
        self.inputs = inputs
        self.outputs = (TensorSpec("logits", "float32", (-1, 10)),)
        self.providers = ("CPUExecutionProvider",)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.zeros((1, 10), np.float32)]


def serving_model(*inputs: TensorSpec, image: bool = False, version: str = "1") -> ServingModel:
    plan = plan_image_input(Preprocessing(color_mode="L"), inputs[0]) if image else None
    return ServingModel(
        name="m",
        version=version,
        session=FakeSession(inputs),
        manifest=Manifest(),
        image_plan=plan,
        image_plan_error="" if image else "no preprocessing",
        loaded_at=0.0,
        load_seconds=0.0,
    )


def outcome(check: object, *args: object) -> str:
    try:
        return str(check(*args))  # type: ignore[operator]
    except InvalidInput as exc:
        return f"{exc.field}: {exc}"
    except TypeError as exc:  # a dtype numpy has no name for: unchanged behaviour
        return f"TypeError: {exc}"


DYNAMIC_BATCH = TensorSpec("input", "float32", (-1, 1, 4, 4))
FIXED_BATCH = TensorSpec("input", "float32", (1, 1, 4, 4))
DYNAMIC_SIDE = TensorSpec("input", "float32", (-1, 1, -1, 4))
ODD_TYPE = TensorSpec("input", "tensor(bfloat16)", (-1, 4))


@pytest.mark.parametrize("spec", [DYNAMIC_BATCH, FIXED_BATCH, DYNAMIC_SIDE, ODD_TYPE])
@pytest.mark.parametrize(
    "array",
    [
        np.zeros((1, 1, 4, 4), np.float32),
        np.zeros((3, 1, 4, 4), np.float32),
        np.zeros((1, 1, 5, 4), np.float32),
        np.zeros((1, 1, 4), np.float32),
        np.zeros((1, 1, 4, 4, 1), np.float32),
        np.zeros((1, 1, 4, 4), np.float64),
        np.zeros((1, 4), np.float32),
    ],
    ids=["ok", "batch-3", "taller", "rank-3", "rank-5", "float64", "2-d"],
)
@pytest.mark.parametrize("name", ["", "input", "other"])
def test_quick_tensor_check_agrees_with_validate_tensor(
    spec: TensorSpec, array: np.ndarray, name: str
) -> None:
    model = serving_model(spec)
    plan = RequestPlan(model, BatchingDefaults())
    assert outcome(plan.tensor_input, model, array, name) == outcome(
        validate_tensor, model, array, name
    )


def test_models_with_two_inputs_get_the_full_check() -> None:
    model = serving_model(DYNAMIC_BATCH, TensorSpec("mask", "float32", (-1, 4)))
    plan = RequestPlan(model, BatchingDefaults())
    with pytest.raises(InvalidInput, match="takes 2 inputs"):
        plan.tensor_input(model, np.zeros((1, 1, 4, 4), np.float32), "")


def test_pixel_tensors_only_for_image_models_with_non_uint8_input() -> None:
    image_model = serving_model(DYNAMIC_BATCH, image=True)
    plan = RequestPlan(image_model, BatchingDefaults())
    assert plan.is_pixel_tensor(np.zeros((4, 4, 1), np.uint8))
    assert not plan.is_pixel_tensor(np.zeros((1, 1, 4, 4), np.float32))
    tensor_model = serving_model(DYNAMIC_BATCH)
    assert not RequestPlan(tensor_model, BatchingDefaults()).is_pixel_tensor(
        np.zeros((4, 4, 1), np.uint8)
    )


def test_a_plan_serves_one_model_object_and_does_not_keep_it_alive() -> None:
    defaults = BatchingDefaults()
    old = serving_model(DYNAMIC_BATCH, version="1")
    plan = RequestPlan(old, defaults)
    assert plan.policy is not None  # dynamic batch axis everywhere: batching applies
    assert plan.serves(old, defaults)
    assert not plan.serves(serving_model(DYNAMIC_BATCH, version="1"), defaults)  # a reload
    assert not plan.serves(old, BatchingDefaults(enabled=False))
    assert RequestPlan(old, BatchingDefaults(enabled=False)).policy is None
    alive = weakref.ref(old)
    del old
    gc.collect()
    assert alive() is None
