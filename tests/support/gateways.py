"""A real gateway for tests: settings on free loopback ports, and a threaded runner.

(Kept out of conftest.py so test modules import it by a unique name: several
conftest.py files in one run would shadow each other under `import conftest`.)
"""

from __future__ import annotations

from pathlib import Path

from edge_server.app import Gateway
from edge_server.settings import Settings


def gateway_settings(model_root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_root": model_root,
        "host": "127.0.0.1",
        "grpc_port": 0,
        "http_port": 0,
        "default_model": "gray",
        "shutdown_grace_seconds": 2.0,
        "inference_workers": 2,
        "intra_op_threads": 1,
    }
    values.update(overrides)
    return Settings.from_values(**values)


class ThreadedGateway:
    """A real gateway on its own event loop thread, for tests that use sync clients."""

    def __init__(self, settings: Settings) -> None:
        import asyncio
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.gateway = Gateway(settings)
        self._call(self._start())

    def _call(self, coro: object) -> object:
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)  # type: ignore[arg-type]

    async def _start(self) -> None:
        await self.gateway.start()
        await self.gateway.wait_for_models()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.gateway.grpc_port}"

    def stop(self) -> None:
        self._call(self.gateway.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
