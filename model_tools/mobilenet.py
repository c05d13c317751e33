"""A hand-written MobileNetV2 (Sandler et al., 2018) for benchmarks; random weights.

``model-tools export model_tools.mobilenet:mobilenet_v2 --input-shape 1,3,224,224``
gives a 3.5M-parameter, 224x224 ImageNet-shaped model without torchvision.
Imports torch.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MobileNetV2", "mobilenet_v2"]

# expansion t, output channels c, repeats n, first stride s (Table 2 of the paper).
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn(
    inp: int, out: int, kernel: int, stride: int, groups: int = 1, act: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when shapes match."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inp * expansion
        self.residual = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn(inp, hidden, 1, 1))
        layers += [
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, out, 1, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.block(x)
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        channels = int(32 * width)
        layers: list[nn.Module] = [_conv_bn(3, channels, 3, 2)]
        for expansion, out, repeats, stride in _SETTINGS:
            out_channels = int(out * width)
            for i in range(repeats):
                layers.append(
                    InvertedResidual(channels, out_channels, stride if i == 0 else 1, expansion)
                )
                channels = out_channels
        self.last = max(1280, int(1280 * width))
        layers.append(_conv_bn(channels, self.last, 1, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        logits: torch.Tensor = self.classifier(x)
        return logits


def _calibrate_batchnorm(model: nn.Module, batches: int = 2, batch_size: int = 8) -> None:
    """Set BN running statistics from random images, so activations keep unit scale.

    With random weights and identity BN statistics the activations shrink ~10x per
    block and the logits end up near 1e-9: useless for checking numerics or
    calibrating quantization ranges.
    """
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch_size, 3, 224, 224))


def mobilenet_v2(num_classes: int = 1000, seed: int = 0) -> MobileNetV2:
    """MobileNetV2 with seeded random weights and calibrated BN, in eval mode."""
    torch.manual_seed(seed)
    model = MobileNetV2(num_classes)
    _calibrate_batchnorm(model)
    return model.eval()
