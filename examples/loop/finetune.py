"""Fine-tune the running digits model on the labelled hard examples plus its original
training data, and export the candidate (ONNX + manifest) with ``model_tools``.

The running version is read back from its ONNX file: the exporter folded each
batch-norm into the convolution before it, so the folded weights go into the
convolutions and the batch-norms are set to pass their input through with the folded
bias added. Training keeps the batch-norms in evaluation mode (their statistics stay
those of the running model), so the first step starts exactly where the gateway is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from model_tools.digits import DigitsCNN, normalize
from model_tools.export import ExportConfig, ManifestOptions, export_model
from model_tools.sessions import open_session

__all__ = ["export_candidate", "finetune", "from_onnx"]


def from_onnx(path: Path) -> DigitsCNN:
    """The digits CNN with the weights of an exported version (checked against ONNX)."""
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    model = DigitsCNN()
    with torch.no_grad():
        for conv, norm in (("features.0", "features.1"), ("features.4", "features.5")):
            model.state_dict()[f"{conv}.weight"].copy_(torch.tensor(weights[f"{conv}.weight"]))
            bn: Any = model.get_submodule(norm)
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(float(np.sqrt(1.0 + bn.eps)))  # (y - 0) / sqrt(1 + eps) * this = y
            bn.bias.copy_(torch.tensor(weights[f"{conv}.weight_bias"]))
        for linear in ("head.1", "head.4"):
            for part in ("weight", "bias"):
                key = f"{linear}.{part}"
                model.state_dict()[key].copy_(torch.tensor(weights[key]))
    model.eval()
    probe = normalize(np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8))
    expected = open_session(path).run(None, {"input": probe})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(probe)).numpy()
    if not np.allclose(got, expected, atol=1e-3):
        raise RuntimeError(f"{path}: weights did not load as the exporter wrote them")
    return model


def _train_mode(model: DigitsCNN) -> None:
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()  # keep the running model's statistics


def finetune(
    model: DigitsCNN,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float = 5e-4,
    batch_size: int = 64,
    seed: int = 0,
) -> DigitsCNN:
    """A few epochs of Adam at a small learning rate on uint8 [N, 28, 28] images, on one
    thread: at this size a second one doubled the CPU time and saved no wall time."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _epochs(model, images, labels, epochs, lr, batch_size, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _epochs(
    model: DigitsCNN,
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> DigitsCNN:
    torch.manual_seed(seed)
    x = torch.from_numpy(normalize(images))
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    _train_mode(model)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def export_candidate(
    model: DigitsCNN, target: Path, running_manifest: dict[str, Any], version: str
) -> Path:
    """``model_tools``' export: ONNX checked against torch, manifest beside it."""
    extra = {
        "lineage": {"parent_version": running_manifest["version"]},
        "feedback": running_manifest["feedback"],
    }
    options = ManifestOptions(
        name=running_manifest["name"],
        version=version,
        labels=tuple(running_manifest["labels"]),
        preprocessing=dict(running_manifest["preprocessing"]),
        extra=extra,
    )
    config = ExportConfig(input_shape=(1, 1, 28, 28), output_names=("logits",))
    probe = normalize(np.random.default_rng(1).integers(0, 256, (16, 28, 28), dtype=np.uint8))
    return export_model(model, target, config, options, probe).path
