"""Drift scores of the digits model on a real gateway: reference-distribution traffic
against shifted streams, per window size; the numbers behind --drift-threshold's default
(docs/drift.md). Not part of ``make bench``: ``python -m benchmarks.drift_threshold``.

The reference is recorded by ``evaluate_models``/``record_evaluation`` (what
``model-tools evaluate --record`` runs) on the first 180 held-out digits; traffic is
drawn (seeded, with replacement) from the other 180, as drawn or shifted.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np

from tests.support.drift_traffic import (
    DIGITS_TEST,
    REFERENCE_ROWS,
    Shift,
    as_drawn,
    blurred,
    digits_root,
    inverted,
    metrics_page,
    predict_all,
)
from tests.support.metrics_text import sample
from tests.support.processes import ServerProcess

SHIFTS: dict[str, Shift] = {"reference": as_drawn, "inverted": inverted, "blurred": blurred}
WINDOWS = (100, 200, 500)
SEEDS = (1, 2, 3)


def _pngs(shift: Shift, count: int, seed: int) -> list[bytes]:
    import io

    from PIL import Image

    images = np.load(DIGITS_TEST)["x"][REFERENCE_ROWS:]
    pick = random.Random(seed)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(shift(images[pick.randrange(len(images))])).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def measure(window: int, shift: str, seed: int, root: Path) -> dict[str, float]:
    gateway = ServerProcess(
        [
            *("--model-root", str(root), "--drift-window", str(window)),
            *("--drift-min-samples", "10", "--inference-workers", "1", "--preprocess-workers", "1"),
        ]
    )
    try:
        gateway.wait_serving()
        predict_all(gateway.target, "digits", _pngs(SHIFTS[shift], window, seed))
        page = metrics_page(gateway.http_port)
    finally:
        gateway.terminate()
    labels = {"model": "digits", "version": "1"}
    return {
        "score": sample(page, "edge_model_drift_score", **labels),
        "low_margin_share": sample(page, "edge_model_low_margin_share", **labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = digits_root(Path(tmp) / "models")
        results = {
            f"{shift} window={window}": [measure(window, shift, seed, root) for seed in SEEDS]
            for window in WINDOWS
            for shift in SHIFTS
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'traffic':<26} {'score min':>9} {'score max':>9} {'low margin':>10}")
    for name, runs in results.items():
        scores = [r["score"] for r in runs]
        margin = np.mean([r["low_margin_share"] for r in runs])
        print(f"{name:<26} {min(scores):9.3f} {max(scores):9.3f} {margin:10.3f}")


if __name__ == "__main__":
    main()
