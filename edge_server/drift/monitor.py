"""The gateway's drift monitor: per served version, a rolling window against its reference.

A version whose manifest carries a signed ``reference`` block (docs/drift.md) gets a
``DriftWindow`` on its first prediction; versions without one are not monitored. At
most ``max_versions`` windows are kept (the least recently used goes first), so a
gateway that cycles through many versions holds bounded memory. The drift score is
computed when it is read (metrics scrape, feedback batch), and every ``RECHECK``
predictions for the cheap ``is_drifting`` question the feedback recorder asks on the
request path. Called on the event loop only; plain Python.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from edge_contracts.drift_reference import DriftReference, reference_from_manifest
from edge_contracts.errors import ManifestError
from edge_contracts.manifest import Manifest
from edge_server.catalogue.serving import ServingModel
from edge_server.drift.window import DriftSnapshot, DriftWindow
from edge_server.inference.postprocess import Classification
from edge_server.inference.predictor import PredictInput, PredictOutput

__all__ = ["DriftMonitor", "DriftSettings", "margin_of"]

logger = logging.getLogger(__name__)

RECHECK = 32  # predictions between two recomputations of the cached drifting flag


@dataclass(frozen=True)
class DriftSettings:
    threshold: float = 0.3
    window: int = 500
    min_samples: int = 100
    max_versions: int = 32


def margin_of(classification: Classification) -> float:
    """Top-1 minus top-2 probability. With only the top-1 known (a caller asked for
    top_k=1) the second is at most 1 - top1, so 2 * top1 - 1 is a lower bound."""
    top = classification.top_k
    if len(top) >= 2:
        return top[0].score - top[1].score
    return 2.0 * classification.confidence - 1.0


class DriftMonitor:
    def __init__(self, settings: DriftSettings) -> None:
        self.settings = settings
        self._windows: OrderedDict[tuple[str, str], DriftWindow] = OrderedDict()
        self._unmonitored: set[tuple[str, str]] = set()
        self._drifting: dict[tuple[str, str], bool] = {}
        self._since_check: dict[tuple[str, str], int] = {}

    def observe(
        self, model: ServingModel, _request: PredictInput, output: PredictOutput | None
    ) -> None:
        """A Predict result (the predictor's ``on_result`` signature); failures are not
        predictions and do not move the window."""
        if output is not None and output.classification.class_id >= 0:
            self.add(model.name, model.version, model.manifest, output.classification)

    def add(self, name: str, version: str, manifest: Manifest, result: Classification) -> None:
        key = (name, version)
        window = self._windows.get(key)
        if window is None:
            window = self._window(key, manifest)
            if window is None:
                return
        else:
            self._windows.move_to_end(key)
        window.add(result.class_id, result.confidence, margin_of(result))
        since = self._since_check.get(key, 0) + 1
        if since >= RECHECK:
            since = 0
            self._drifting[key] = self._snapshot(window).drifting
        self._since_check[key] = since

    def _window(self, key: tuple[str, str], manifest: Manifest) -> DriftWindow | None:
        if key in self._unmonitored:
            return None
        reference = self._reference(key, manifest)
        if reference is None:
            self._unmonitored.add(key)
            return None
        window = self._windows[key] = DriftWindow(*key, reference, self.settings.window)
        while len(self._windows) > self.settings.max_versions:
            old, _ = self._windows.popitem(last=False)
            self._drifting.pop(old, None)
            self._since_check.pop(old, None)
        return window

    @staticmethod
    def _reference(key: tuple[str, str], manifest: Manifest) -> DriftReference | None:
        try:
            return reference_from_manifest(manifest)
        except ManifestError as exc:
            # A bundle's reference was checked at install; a hand-made folder may be wrong.
            logger.warning("model %s version %s: %s; drift is not monitored", *key, exc)
            return None

    def _snapshot(self, window: DriftWindow) -> DriftSnapshot:
        return window.snapshot(self.settings.threshold, self.settings.min_samples)

    def is_drifting(self, name: str, version: str) -> bool:
        """The flag as of the last recheck (at most RECHECK predictions old)."""
        return self._drifting.get((name, version), False)

    def snapshots(self) -> list[DriftSnapshot]:
        """Every monitored version, computed now, sorted by model and version."""
        found = [self._snapshot(w) for _, w in sorted(self._windows.items())]
        for snapshot in found:
            self._drifting[(snapshot.model, snapshot.version)] = snapshot.drifting
        return found
