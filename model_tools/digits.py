"""The demo's data and model: scikit-learn's bundled 8x8 digits as 28x28 images, a small CNN.

Images are made the way a camera-side client would send them: uint8 grayscale,
upscaled with PIL bilinear. Training feeds them through the same arithmetic the
gateway applies (x * scale - mean) / std, so the exported model serves them as-is.
Imports torch: used only by ``model_tools.demo`` and tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from tqdm import tqdm

__all__ = [
    "MEAN",
    "SCALE",
    "STD",
    "DigitsCNN",
    "DigitsData",
    "load_digits_data",
    "normalize",
    "train_digits_cnn",
]

_log = logging.getLogger(__name__)
IMAGE_SIZE = 28
SCALE = 1.0 / 255.0
MEAN = 0.5
STD = 0.5


@dataclass(frozen=True)
class DigitsData:
    """uint8 images [N, 28, 28] and int64 labels, split into train and held-out test."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    test_index: np.ndarray  # positions in sklearn's dataset, for naming sample files


def upscale(digit: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """An 8x8 digit with values 0..16 as a size x size uint8 image (PIL bilinear)."""
    pixels = np.clip(np.rint(digit * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_digits_data(test_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """The whole bundled dataset (1797 images), stratified split with a fixed seed."""
    digits = load_digits()
    images = np.stack([upscale(d) for d in digits.images])
    labels = digits.target.astype(np.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return DigitsData(
        images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], test_idx
    )


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] -> float32 [N, 1, H, W], exactly as the manifest prescribes."""
    x = images.astype(np.float32) * np.float32(SCALE)
    x = (x - np.float32(MEAN)) / np.float32(STD)
    return np.ascontiguousarray(x[:, None, :, :], dtype=np.float32)


class DigitsCNN(nn.Module):
    """Two conv blocks with batch-norm and a two-layer head; about 206k parameters."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.features(x))
        return logits


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train_digits_cnn(
    data: DigitsData,
    *,
    epochs: int = 12,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
) -> DigitsCNN:
    """Train with a fixed seed and thread count, so reruns give the same weights."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    try:
        _seed_everything(seed)
        model = DigitsCNN()
        x = torch.from_numpy(normalize(data.train_images))
        y = torch.from_numpy(data.train_labels)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        generator = torch.Generator().manual_seed(seed)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for epoch in tqdm(range(epochs), desc="train", unit="epoch", disable=not progress):
            order = torch.randperm(len(y), generator=generator)
            total = 0.0
            for start in range(0, len(y), batch_size):
                batch = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            scheduler.step()
            _log.info("epoch %d: loss %.4f", epoch + 1, total / len(y))
        return model.eval()
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
