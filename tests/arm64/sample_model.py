"""The model root and the sample image the arm64 checks serve and send."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from tests.support.paths import REPO


def model_and_sample(workdir: Path) -> tuple[Path, str, bytes, str]:
    """(model root, model name, image bytes, description): the shipped demo when present.

    The root is a copy in `workdir`, readable by everyone: the image's gateway runs as
    uid 10001 and reads it through a bind mount.
    """
    demo = REPO / "examples" / "models" / "digits" / "1"
    images = sorted((REPO / "examples" / "images").glob("*.png"))
    root = workdir / "models"
    if (demo / "model.onnx").is_file() and images:
        shutil.copytree(demo, root / "digits" / "1")
        model, image, described = "digits", images[0].read_bytes(), images[0].name
        described = f"examples/models/digits/1, {described}"
    else:
        model, image = "gray", _factory_model(root)
        described = "tests/support/model_factory gray v2 (demo model absent)"
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root, model, image, described


def _factory_model(root: Path) -> bytes:
    # Imported here: onnx is needed only when the shipped demo model is absent.
    import numpy as np
    from PIL import Image

    from tests.support.model_factory import build_model_root

    build_model_root(root)
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
