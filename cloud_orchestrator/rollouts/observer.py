"""What a rollout runner reports while it works: gateway states, bytes pushed, waves."""

from __future__ import annotations

__all__ = ["RolloutObserver"]


class RolloutObserver:
    """Progress callbacks (the CLI draws bars from them); the default does nothing."""

    def on_target(self, rollout_id: str, gateway_id: str, state: str, detail: str) -> None:
        """A gateway's state changed."""

    def on_bytes(self, rollout_id: str, gateway_id: str, stored: int, total: int) -> None:
        """More of the bundle is on a gateway."""

    def on_wave(self, rollout_id: str, wave: int, waves: int) -> None:
        """A wave starts."""
