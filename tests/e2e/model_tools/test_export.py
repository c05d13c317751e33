"""Export of real torch models: numerics against PyTorch, dynamic batch, clear failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from model_tools.digits import DigitsCNN
from model_tools.errors import ToolError
from model_tools.export import ExportConfig, ManifestOptions, export_model
from model_tools.manifest_io import image_preprocessing, read_manifest
from model_tools.onnx_model import graph_signature
from model_tools.torch_loading import load_torch_model
from tests.support.digits_model import run_cli


def _bn_cnn() -> nn.Module:
    """A CNN whose batch-norm statistics are not the identity (one training pass)."""
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    )
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 16, 16) * 3 + 1)
    return model.eval()


def _mlp() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(20, 32), nn.GELU(), nn.Linear(32, 4)).eval()


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x})[0])


def test_cnn_with_batchnorm_matches_torch_at_several_batch_sizes(tmp_path: Path) -> None:
    model = _bn_cnn()
    out = tmp_path / "cnn" / "model.onnx"
    given = np.random.default_rng(5).standard_normal((7, 3, 16, 16)).astype(np.float32)
    pre = image_preprocessing((1, 3, 16, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    result = export_model(
        model,
        out,
        ExportConfig(input_shape=(2, 3, 16, 16), check_batch_sizes=(1, 3, 8)),
        ManifestOptions(name="cnn", labels=tuple("abcde"), preprocessing=pre),
        given,
    )
    assert {c.batch_size for c in result.checks} == {1, 2, 3, 7, 8}
    assert result.max_abs_diff < 1e-4
    inputs, outputs = graph_signature(onnx.load(str(out)))
    assert inputs[0].shape[0] == "batch" and inputs[0].shape[1:] == (3, 16, 16)
    assert outputs[0].shape[0] == "batch"
    # a batch size the export never saw
    x = np.random.default_rng(9).standard_normal((11, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(out, x), expected, atol=1e-4)
    manifest = read_manifest(out.with_name("manifest.json"))
    assert manifest["name"] == "cnn" and manifest["labels"] == list("abcde")
    assert manifest["preprocessing"]["color_mode"] == "RGB"
    assert manifest["preprocessing"]["input_size"] == [16, 16]
    assert manifest["inputs"][0]["shape"] == ["batch", 3, 16, 16]


def test_mlp_export_with_legacy_exporter_and_old_opset(tmp_path: Path) -> None:
    out = tmp_path / "mlp.onnx"
    result = export_model(
        _mlp(),
        out,
        ExportConfig(input_shape=(1, 20), opset=17, exporter="auto", check_batch_sizes=(1, 4)),
        ManifestOptions(name="mlp", preprocessing=image_preprocessing((1, 20))),
    )
    assert result.exporter == "legacy" and result.opset == 17
    assert result.max_abs_diff < 1e-5
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 17
    manifest = json.loads((tmp_path / "mlp.manifest.json").read_text())
    assert "preprocessing" not in manifest  # not an image model: tensor input only


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated upstream
def test_torchscript_file_and_checkpoint_loading(tmp_path: Path) -> None:
    torch.manual_seed(3)
    trained = DigitsCNN().eval()
    checkpoint = tmp_path / "weights.pt"
    torch.save({"state_dict": trained.state_dict()}, checkpoint)
    loaded = load_torch_model("model_tools.digits:DigitsCNN", checkpoint)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))
    scripted = tmp_path / "digits.ts"
    torch.jit.save(torch.jit.script(trained), str(scripted))
    result = export_model(
        load_torch_model(str(scripted)),
        tmp_path / "ts.onnx",
        ExportConfig(input_shape=(1, 1, 28, 28)),
    )
    assert result.exporter == "legacy" and result.max_abs_diff < 1e-4


def test_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path: Path) -> None:
    checkpoint = tmp_path / "mlp.pt"
    torch.save(_mlp().state_dict(), checkpoint)
    with pytest.raises(ToolError, match="does not fit the model"):
        load_torch_model("model_tools.digits:DigitsCNN", checkpoint)
    with pytest.raises(ToolError, match="cannot import"):
        load_torch_model("no_such_package.models:net")
    with pytest.raises(ToolError, match="has no attribute"):
        load_torch_model("model_tools.digits:NoSuchNet")


class _Eigen(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvals(x).real


class _ValueBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x - 1


def test_unexportable_models_give_clear_errors(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bad.onnx"
    with pytest.raises(ToolError, match=r"cannot be exported to ONNX .*linalg_eig"):
        export_model(_Eigen(), out, ExportConfig(input_shape=(1, 4, 4)))
    with pytest.raises(ToolError, match="differs from PyTorch"):
        export_model(_ValueBranch(), out, ExportConfig(input_shape=(1, 4)))
    with pytest.raises(ToolError, match=r"does not run on inputs of shape \[2, 3\]"):
        export_model(_mlp(), out, ExportConfig(input_shape=(1, 3)))
    assert not out.exists()  # nothing half-written
    captured = capfd.readouterr()
    assert "Torch IR graph" not in captured.out + captured.err


def test_export_imports_a_factory_module_from_the_current_folder(tmp_path: Path) -> None:
    """``model-tools export mypkg:factory`` finds ./mypkg.py as ``python -m`` would."""
    (tmp_path / "mypkg.py").write_text(
        "from torch import nn\n\n\n"
        "def factory() -> nn.Module:\n"
        "    return nn.Sequential(nn.Linear(6, 3))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = run_cli(
        "export", "mypkg:factory", "--input-shape", "1,6", "-o", "out/mine.onnx", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_abs_diff"] < 1e-5
    inputs, outputs = graph_signature(onnx.load(str(tmp_path / "out" / "mine.onnx")))
    assert inputs[0].shape[1:] == (6,) and outputs[0].shape[1:] == (3,)
