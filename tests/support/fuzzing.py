"""Hypothesis profiles and strategies for the property tests of the parsers that face
untrusted bytes (tests/unit/*/test_*_properties.py, tests/e2e/edge_server/test_http_properties.py).

Two profiles: ``brief`` (the default; a few dozen examples per property, derandomized so
``make test`` is reproducible) and ``fuzz`` (``make fuzz``: thousands of random examples).
tests/conftest.py registers them and loads ``$EDGE_HYPOTHESIS_PROFILE`` (default ``brief``);
hypothesis' own ``--hypothesis-profile`` option also works.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

__all__ = [
    "PROFILE_ENV",
    "bounded_memory",
    "json_bytes",
    "json_documents",
    "json_values",
    "mutated_bytes",
    "register_profiles",
]

PROFILE_ENV = "EDGE_HYPOTHESIS_PROFILE"
# Under .cache/ (git-ignored), not hypothesis' default .hypothesis/ in the work tree.
_DATABASE = ".cache/hypothesis"


def register_profiles() -> None:
    # Shared 2-core machines: wall-clock health checks would fail for reasons of load.
    slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile(
        "brief",
        max_examples=25,
        deadline=5000,
        derandomize=True,
        database=None,
        suppress_health_check=slow_ok,
        print_blob=True,
    )
    settings.register_profile(
        "fuzz",
        max_examples=3000,
        deadline=10000,
        database=DirectoryBasedExampleDatabase(_DATABASE),
        suppress_health_check=slow_ok,
        print_blob=True,
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value, with the scalars a parser finds awkward (huge ints, floats, unicode)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**64), max_value=2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(["RGB", "L", "NCHW", "NHWC", "logits", "probabilities", "bilinear"]),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=12), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def json_documents(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some keys (at any depth) replaced by arbitrary JSON, or deleted."""

    def mutate(draw: Callable[[st.SearchStrategy[Any]], Any], value: Any, depth: int) -> Any:
        if depth > 0 and draw(st.integers(0, 9)) == 0:
            return draw(json_values())
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if draw(st.integers(0, 15)) == 0:
                    continue  # delete the key
                out[key] = mutate(draw, item, depth + 1)
            if draw(st.integers(0, 7)) == 0:
                out[draw(st.text(max_size=12))] = draw(json_values())
            return out
        if isinstance(value, list):
            return [mutate(draw, item, depth + 1) for item in value]
        return value

    @st.composite
    def documents(draw: Callable[[st.SearchStrategy[Any]], Any]) -> dict[str, Any]:
        result = mutate(draw, base, 0)
        assert isinstance(result, dict)
        return result

    return documents()


@st.composite
def mutated_bytes(draw: Callable[[st.SearchStrategy[Any]], Any], valid: bytes) -> bytes:
    """``valid`` with a few bytes flipped, inserted, removed, or cut short."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and data:
            del data[position : position + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[position:]
        elif kind == "splice":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[position : position + len(chunk)] = chunk
    return bytes(data)


def json_bytes(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


@contextmanager
def bounded_memory(limit: int) -> Iterator[None]:
    """Fail when Python and numpy allocations inside the block peak above ``limit`` bytes."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= limit, f"peak allocation {peak} bytes, the bound is {limit}"
