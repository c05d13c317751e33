"""Footprint of the gateway on this machine: memory, cold start, install size.

- Peak RSS (VmHWM of /proc/<pid>/status) of a real `edge-server` serving one model:
  after grpc.health SERVING, after 1,000 and after 2,000 sequential image Predicts (the
  growth between the two shows unbounded caches). Beside it, in the same run: a bare
  interpreter, a bare ONNX Runtime session process with the same model and threads
  (1,000 runs), and an interpreter that only imports the gateway (`edge_server.app`).
  Budget: gateway peak <= ONNX Runtime session cost (session process - bare interpreter)
  + 60 MiB for Python, gRPC and our code (benchmarks/footprint/peak_memory.py).
- Cold start: process start to grpc.health SERVING on the demo model, median of 5, beside
  a bare grpc.aio + health + ONNX Runtime server with the same model. Goal: < 0.6 s
  (benchmarks/footprint/cold_start.py).
- Install size of the runtime dependencies (setup.cfg install_requires, pinned by
  constraints.txt): wheel and installed size per distribution, x86_64 here and aarch64
  from `make arm64-smoke`'s cache when present (benchmarks/footprint/install_size.py).

Prints Markdown tables (benchmarks/footprint/tables.py); writes
bench-results/footprint.json. Models: examples/models/digits and model_tools'
static-INT8 MobileNetV2 via benchmarks.models (the row is skipped with a note when
torch/model_tools cannot build it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks import models
from benchmarks.footprint.cold_start import cold_start
from benchmarks.footprint.install_size import install_size
from benchmarks.footprint.peak_memory import memory_row, mib
from benchmarks.footprint.tables import markdown

REPO = models.REPO
RESULTS = REPO / "bench-results"
ROOTS = REPO / ".cache" / "bench" / "footprint"  # one model root per model: one row each


def demo_model() -> tuple[Path, bytes, str]:
    """(model root holding only the demo, sample image, note)."""
    demo = REPO / "examples" / "models" / "digits" / "1"
    images = sorted((REPO / "examples" / "images").glob("*.png"))
    root = ROOTS / "digits"
    if (demo / "model.onnx").is_file() and images:
        target = root / "digits" / "1"
        target.mkdir(parents=True, exist_ok=True)
        for item in demo.iterdir():
            (target / item.name).write_bytes(item.read_bytes())
        return root, images[0].read_bytes(), "examples/models/digits/1"
    raise SystemExit("footprint: examples/models/digits/1 and examples/images/*.png are needed")


def mobilenet_int8() -> tuple[Path, bytes, str] | str:
    """(model root, JPEG, note) for the static-INT8 MobileNetV2, or why it is skipped."""
    try:
        built = models.model_root() / "mobilenet-int8" / "1"
        image = models.jpeg_photo()
    except Exception as exc:  # torch, model_tools or scikit-image missing or failing
        return f"skipped: cannot build model_tools' INT8 MobileNetV2 ({type(exc).__name__}: {exc})"
    root = ROOTS / "mobilenet-int8"
    target = root / "mobilenet-int8" / "1"
    target.mkdir(parents=True, exist_ok=True)
    for item in built.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    size = (target / "model.onnx").stat().st_size
    return root, image, f"model_tools MobileNetV2, static INT8 QDQ ({mib(size)} MiB file)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.footprint",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--skip-mobilenet", action="store_true", help="digits demo row only")
    parser.add_argument("--out", type=Path, default=RESULTS / "footprint.json")
    args = parser.parse_args(argv)
    digits_root, digits_image, digits_note = demo_model()
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                          "loadavg": os.getloadavg()}, "notes": []}  # fmt: skip
    report["memory"] = [memory_row("digits (demo)", digits_root, digits_image, digits_note)]
    mobilenet = "skipped: --skip-mobilenet" if args.skip_mobilenet else mobilenet_int8()
    if isinstance(mobilenet, str):
        report["notes"].append(f"MobileNetV2 INT8 row {mobilenet}")
    else:
        report["memory"].append(memory_row("mobilenet_v2 INT8", *mobilenet))
    report["cold_start"] = cold_start(digits_root)
    report["install_size"] = install_size()
    report["machine"]["loadavg_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(markdown(report))
    print(f"\nwritten: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
