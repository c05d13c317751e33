"""The user's own torch model for `model-tools export mymodel:build`, copied into the
neutral folder (a module in the current folder, no PYTHONPATH).

A nearest-centroid digit classifier: one Linear layer whose rows are the class means of
the calibration images, preprocessed as the manifest says ((x / 255 - 0.5) / 0.5), and
whose biases are -|mean|^2 / 2, so argmax(logits) is the nearest class mean. No training,
deterministic, and accurate enough (about 89 % top-1 on the held-out digits) for
`evaluate` and the gateway's predictions to mean something.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data" / "digits-calib.npz"


def build() -> torch.nn.Module:
    data = np.load(DATA)
    images, labels = data["x"], data["y"]
    x = (images.reshape(len(images), -1).astype(np.float32) / 255.0 - 0.5) / 0.5
    means = np.stack([x[labels == digit].mean(axis=0) for digit in range(10)])
    layer = torch.nn.Linear(x.shape[1], 10)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(means))
        layer.bias.copy_(torch.from_numpy(-0.5 * (means**2).sum(axis=1)))
    return torch.nn.Sequential(torch.nn.Flatten(), layer).eval()
