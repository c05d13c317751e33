"""Live rollout progress on stderr (tqdm): gateways done, the wave, pushes under way."""

from __future__ import annotations

import sys
from typing import Any

from cloud_orchestrator.rollouts.observer import RolloutObserver
from cloud_orchestrator.rollouts.store import TERMINAL_TARGET_STATES, RolloutRecord

__all__ = ["ProgressObserver"]


class ProgressObserver(RolloutObserver):
    def __init__(self, record: RolloutRecord, enabled: bool = True) -> None:
        self._bar: Any = None
        self._wave = ""
        self._active: dict[str, str] = {}
        self._done = {t.gateway_id for t in record.targets if t.state in TERMINAL_TARGET_STATES}
        self._failed = 0
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(
                total=len(record.targets),
                initial=len(self._done),
                desc=f"{record.model_name} {record.version}",
                unit="gw",
                file=sys.stderr,
                dynamic_ncols=True,
            )

    def _refresh(self) -> None:
        if self._bar is None:
            return
        pushing = " ".join(f"{g}:{s}" for g, s in sorted(self._active.items())[:4])
        failed = f" failed {self._failed}" if self._failed else ""
        self._bar.set_postfix_str(f"{self._wave}{failed} {pushing}".strip(), refresh=True)

    def on_wave(self, rollout_id: str, wave: int, waves: int) -> None:
        self._wave = f"wave {wave + 1}/{waves}"
        self._refresh()

    def on_target(self, rollout_id: str, gateway_id: str, state: str, detail: str) -> None:
        if state in TERMINAL_TARGET_STATES:
            self._active.pop(gateway_id, None)
            if state == "FAILED":
                self._failed += 1
            if gateway_id not in self._done and state != "ROLLED_BACK":
                self._done.add(gateway_id)
                if self._bar is not None:
                    self._bar.update(1)
        else:
            self._active[gateway_id] = state.lower()
        self._refresh()

    def on_bytes(self, rollout_id: str, gateway_id: str, stored: int, total: int) -> None:
        if total:
            self._active[gateway_id] = f"{100 * stored // total}%"
            self._refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
