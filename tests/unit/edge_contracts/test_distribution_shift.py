import math

import pytest

from edge_contracts.distribution_shift import jensen_shannon_distance


def test_identical_histograms_have_no_distance() -> None:
    assert jensen_shannon_distance([3, 5, 0, 2], [30, 50, 0, 20]) == pytest.approx(0.0, abs=1e-12)


def test_disjoint_histograms_are_one_apart() -> None:
    assert jensen_shannon_distance([4, 0], [0, 9]) == pytest.approx(1.0)


def test_distance_is_symmetric_and_matches_the_definition() -> None:
    p, q = [0.1, 0.4, 0.5], [0.3, 0.3, 0.4]
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda x, y: sum(a * math.log2(a / b) for a, b in zip(x, y, strict=True))  # noqa: E731
    expected = math.sqrt((kl(p, m) + kl(q, m)) / 2)
    assert jensen_shannon_distance(p, q) == pytest.approx(expected)
    assert jensen_shannon_distance(q, p) == pytest.approx(expected)


def test_an_empty_side_is_no_evidence() -> None:
    assert jensen_shannon_distance([0, 0, 0], [1, 2, 3]) is None


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [([1, 2], [1, 2, 3], "differ in length"), ([1, -1], [1, 1], "negative")],
)
def test_bad_histograms_are_refused(first: list[int], second: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jensen_shannon_distance(first, second)
