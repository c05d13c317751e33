"""Classification of model outputs: the plain-Python path for small outputs gives what
the numpy path gives, and both order tied classes as a stable sort does."""

from __future__ import annotations

import numpy as np
import pytest

from edge_contracts.manifest import Manifest
from edge_server.inference import postprocess
from edge_server.inference.postprocess import Classification, classify_numpy

LABELS = tuple(f"class-{i}" for i in range(40))  # fewer than some outputs' classes


def fast_classify(
    output: np.ndarray, manifest: Manifest, top_k: int, monkeypatch: pytest.MonkeyPatch
) -> Classification:
    """postprocess.classify, failing if it falls back to the numpy path."""

    def no_numpy(*args: object) -> Classification:
        raise AssertionError("the small-output path fell back to numpy")

    with monkeypatch.context() as patch:
        patch.setattr(postprocess, "classify_numpy", no_numpy)
        return postprocess.classify(output, manifest, top_k)


def reference_probabilities(scores: np.ndarray, kind: str) -> np.ndarray:
    return scores.astype(np.float32) if kind == "probabilities" else postprocess.softmax(scores)


def assert_same(fast: Classification, reference: Classification, probabilities: np.ndarray) -> None:
    assert len(fast.top_k) == len(reference.top_k)
    assert (fast.class_id, fast.label) == (reference.class_id, reference.label)
    assert fast.confidence == pytest.approx(reference.confidence, rel=1e-5, abs=1e-30)
    for got, want in zip(fast.top_k, reference.top_k, strict=True):
        assert got.score == pytest.approx(want.score, rel=1e-5, abs=1e-30)
        if got.class_id != want.class_id:  # only classes tied within float32 rounding
            assert probabilities[got.class_id] == pytest.approx(
                probabilities[want.class_id], rel=1e-6
            )
        assert got.label == (LABELS[got.class_id] if got.class_id < len(LABELS) else "")


@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_small_outputs_classify_as_numpy_does(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = Manifest(output_kind=kind, labels=LABELS)
    rng = np.random.default_rng(7)
    for trial in range(3000):
        classes = int(rng.integers(1, postprocess.SMALL_OUTPUT + 1))
        if trial % 3 == 0:  # a coarse grid: many exact ties, also at the top-k boundary
            scores = rng.integers(-2, 3, size=classes) / 4
        elif trial % 3 == 1:
            scores = rng.normal(scale=4.0, size=classes)
        else:
            scores = rng.dirichlet(np.ones(classes))
        output = scores.astype(np.float32)[np.newaxis]
        top_k = int(rng.integers(0, classes + 3))  # 0 = the default, beyond = all classes
        fast = fast_classify(output, manifest, top_k, monkeypatch)
        reference = classify_numpy(output[0], manifest, top_k)
        assert_same(fast, reference, reference_probabilities(output[0], kind))
        if trial % 3 == 0:  # exact ties: exactly the same classes in the same order
            assert [s.class_id for s in fast.top_k] == [s.class_id for s in reference.top_k]


@pytest.mark.parametrize("kind", ["logits", "probabilities"])
@pytest.mark.parametrize("classes", [5, 200])  # the plain-Python and the numpy path
def test_ties_keep_ascending_class_ids_like_a_stable_sort(kind: str, classes: int) -> None:
    manifest = Manifest(output_kind=kind, labels=LABELS)
    rng = np.random.default_rng(11)
    for _ in range(200):
        scores = (rng.integers(0, 3, size=classes) / 8).astype(np.float32)
        top_k = int(rng.integers(1, classes + 1))
        expected = np.argsort(-reference_probabilities(scores, kind), kind="stable")[:top_k]
        result = postprocess.classify(scores[np.newaxis], manifest, top_k)
        assert [s.class_id for s in result.top_k] == expected.tolist()


def test_tied_scores_example() -> None:
    manifest = Manifest(labels=("a", "b", "c", "d", "e"))
    logits = np.array([[1.0, 3.0, 3.0, 0.0, 3.0]], dtype=np.float32)
    assert [s.class_id for s in postprocess.classify(logits, manifest, 3).top_k] == [1, 2, 4]
    assert [s.class_id for s in postprocess.classify(logits, manifest, 2).top_k] == [1, 2]
    assert postprocess.classify(logits, manifest, 1).label == "b"


@pytest.mark.parametrize(
    "output",
    [
        np.array([[1.0, np.nan, 2.0]], dtype=np.float32),
        np.array([[np.inf, 1.0, 2.0]], dtype=np.float32),
        np.array([[-np.inf, -np.inf]], dtype=np.float32),
        np.array([[0.5, 2.0, 1.0]], dtype=np.float64),
        np.array([[3, 1, 2]], dtype=np.int64),
        np.arange(70, dtype=np.float32).reshape(1, 70),
        np.array([0.1, 0.7, 0.2], dtype=np.float32),  # [C]
        np.array([[[0.1, 0.7], [0.2, 0.0]]], dtype=np.float32),  # [1, 2, 2]
    ],
    ids=["nan", "inf", "all-minus-inf", "float64", "int64", "70-classes", "1-d", "3-d"],
)
@pytest.mark.parametrize("kind", ["logits", "probabilities"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
def test_unusual_outputs_match_the_numpy_path(output: np.ndarray, kind: str) -> None:
    manifest = Manifest(output_kind=kind, labels=LABELS)
    result = postprocess.classify(output, manifest, 3)
    reference = classify_numpy(postprocess.first_row_scores(output), manifest, 3)
    assert [s.class_id for s in result.top_k] == [s.class_id for s in reference.top_k]
    np.testing.assert_allclose(
        [s.score for s in result.top_k], [s.score for s in reference.top_k], rtol=1e-5
    )
