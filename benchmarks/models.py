"""Models the benchmarks run: the shipped digits demo and a MobileNetV2-sized network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
DEMO_MODEL = REPO / "examples" / "models" / "digits" / "1"

IMAGENET_PREPROCESSING = {
    "color_mode": "RGB",
    "scale": 1 / 255,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "layout": "NCHW",
    "resize_filter": "bilinear",
}


def mobilenet_v2_onnx() -> Path:
    """Export model_tools' MobileNetV2 (random weights, 224x224) once; cached."""
    target = CACHE / "mobilenet_v2_fp32.onnx"
    if target.exists():
        return target
    import torch

    from model_tools.mobilenet import mobilenet_v2

    CACHE.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = mobilenet_v2().eval()
    example = torch.randn(1, 3, 224, 224)
    batch = torch.export.Dim("batch", min=1, max=256)
    torch.onnx.export(
        model,
        (example,),
        str(target),
        dynamo=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: batch}},
        opset_version=20,
        external_data=False,
    )
    return target


def model_root() -> Path:
    """MODEL_ROOT with `digits` (demo) and `mobilenet` (FP32) for the gateway."""
    root = CACHE / "models"
    digits = root / "digits" / "1"
    if not (digits / "model.onnx").exists():
        shutil.copytree(DEMO_MODEL, digits, dirs_exist_ok=True)
    mobilenet = root / "mobilenet" / "1"
    if not (mobilenet / "model.onnx").exists():
        mobilenet.mkdir(parents=True, exist_ok=True)
        shutil.copy(mobilenet_v2_onnx(), mobilenet / "model.onnx")
        manifest = {
            "name": "mobilenet",
            "version": "1",
            "preprocessing": IMAGENET_PREPROCESSING,
            "output_kind": "logits",
            "labels": [f"class-{i}" for i in range(1000)],
        }
        (mobilenet / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
