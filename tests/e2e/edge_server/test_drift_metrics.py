"""A real gateway serving the digits model whose manifest carries a recorded reference:
held-out digits as drawn keep the drift score below the default threshold, inverted or
blurred digits push it above, and /metrics shows both."""

from __future__ import annotations

from pathlib import Path

from tests.support.drift_traffic import (
    as_drawn,
    blurred,
    digits_root,
    inverted,
    metrics_page,
    predict_all,
    traffic_pngs,
)
from tests.support.metrics_text import sample
from tests.support.processes import ServerProcess

LABELS = {"model": "digits", "version": "1"}
WINDOW = 180


def drift(http_port: int) -> tuple[float, float, float, float]:
    page = metrics_page(http_port)
    return (
        sample(page, "edge_model_drift_score", **LABELS),
        sample(page, "edge_model_drifting", **LABELS),
        sample(page, "edge_model_low_margin_share", **LABELS),
        sample(page, "edge_model_drift_window", **LABELS),
    )


def test_reference_traffic_stays_below_the_threshold_and_shifted_traffic_rises_above(
    tmp_path: Path,
) -> None:
    root = digits_root(tmp_path / "models")
    gateway = ServerProcess(
        [
            *("--model-root", str(root), "--drift-window", str(WINDOW)),
            *("--inference-workers", "1", "--preprocess-workers", "1"),
            # One process: each worker scores the traffic it serves (a worker label per
            # series), and this test reads one window of all the traffic.
            *("--workers", "1"),
        ]
    )
    try:
        gateway.wait_serving()
        page = metrics_page(gateway.http_port)
        assert sample(page, "edge_model_drift_threshold") == 0.3  # the documented default
        assert "edge_model_drift_score{" not in page  # no traffic, no evidence, no series

        predict_all(gateway.target, "digits", traffic_pngs(as_drawn, WINDOW))
        score, drifting, low_margin, window = drift(gateway.http_port)
        assert window == WINDOW and 0 < score < 0.3 and drifting == 0
        assert low_margin < 0.05

        predict_all(gateway.target, "digits", traffic_pngs(inverted, WINDOW))
        score, drifting, low_margin, window = drift(gateway.http_port)
        assert window == WINDOW and score > 0.5 and drifting == 1
        assert low_margin > 0.05  # the model is unsure of inverted digits

        predict_all(gateway.target, "digits", traffic_pngs(as_drawn, WINDOW))
        assert drift(gateway.http_port)[1] == 0  # the window forgets the burst

        predict_all(gateway.target, "digits", traffic_pngs(blurred, WINDOW))
        score, drifting, _, _ = drift(gateway.http_port)
        assert score > 0.3 and drifting == 1
    finally:
        assert gateway.terminate() == 0
