"""File modes of everything ``model-tools`` writes: the user's umask decides, except that
a private key is always 0600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.digits_model import run_cli

pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The umask the CLI subprocesses inherit."""
    previous = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(previous)


def ok(*args: str | Path) -> None:
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr


def test_outputs_follow_the_umask_and_private_keys_stay_private(umask: int, tmp_path: Path) -> None:
    public_file, public_dir = 0o666 & ~umask, 0o777 & ~umask
    model = tmp_path / "m" / "1" / "model.onnx"
    ok("export", "model_tools.digits:DigitsCNN", "--input-shape", "1,1,28,28", "-o", model)
    half = tmp_path / "m-fp16" / "1" / "model.onnx"
    ok("quantize", model, "-o", half, "--mode", "fp16", "--bench-runs", "1", "--no-progress")
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((4, 28, 28), np.uint8), y=np.zeros(4, np.int64))
    ok("evaluate", model, half, "--data", data, "--record", "--no-progress")
    key = tmp_path / "keys" / "release.key"
    ok("keygen", "--out", key)
    bundle, resigned = tmp_path / "m-1.edgebundle", tmp_path / "resigned.edgebundle"
    ok("package", model, "-o", bundle, "--key", key, "--golden", "random")
    ok("sign", bundle, "--key", key, "-o", resigned)
    extracted = tmp_path / "served" / "m" / "1"
    ok("verify", bundle, "--trusted-key", key.with_suffix(".pub"), "--extract", extracted)
    written = [
        model, model.with_name("manifest.json"), half, half.with_name("manifest.json"),
        key.with_suffix(".pub"), bundle, resigned,
        *(p for p in extracted.rglob("*") if p.is_file()),
    ]  # fmt: skip
    assert {str(p): oct(mode(p)) for p in written} == {str(p): oct(public_file) for p in written}
    assert oct(mode(extracted)) == oct(public_dir)
    assert oct(mode(key)) == oct(0o600)
    key.chmod(0o644)  # replacing a readable file must not keep it readable
    ok("keygen", "--out", key, "--force")
    assert oct(mode(key)) == oct(0o600)
