"""Shared, session-scoped artifacts: a digits CNN trained briefly, exported, quantized."""

from __future__ import annotations

import pytest

from tests.support.digits_model import Digits, build_digits


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    return build_digits(tmp_path_factory.mktemp("digits"))
