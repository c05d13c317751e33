"""What gRPC's C core does with calls Python has not picked up yet.

    python -m benchmarks.grpc_core_backlog

A grpc.aio server whose event loop is blocked 50 ms per call, with
``grpc.server.max_pending_requests`` 2 (hard limit 4), receives 20 calls at once.
Calls beyond the backlog are refused by the core without reaching Python, within
milliseconds, but with status CANCELLED (grpcio 1.85), not RESOURCE_EXHAUSTED. The
gateway keeps the default backlog (1000 calls) for that reason: under a flood larger
than the event loop can pick up (see the README's overload paragraph), calls wait in
that backlog and the ones beyond it are cancelled by the core, not refused by us.
Prints each call's status and latency, one per line, then the counts.
"""

from __future__ import annotations

import asyncio
import collections
import time

import grpc

CALLS = 20


async def _blocking_handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    time.sleep(0.05)  # noqa: ASYNC251 - blocks the loop on purpose: calls pile up in the core
    return b"ok"


async def main() -> None:
    handler = grpc.method_handlers_generic_handler(
        "bench.Backlog", {"Call": grpc.unary_unary_rpc_method_handler(_blocking_handler)}
    )
    server = grpc.aio.server(
        options=[
            ("grpc.server.max_pending_requests", 2),
            ("grpc.server.max_pending_requests_hard_limit", 4),
        ]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/bench.Backlog/Call")

            async def one() -> tuple[str, float]:
                started = time.perf_counter()
                try:
                    await call(b"x", timeout=10)
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                return code, (time.perf_counter() - started) * 1000

            results = await asyncio.gather(*(one() for _ in range(CALLS)))
    finally:
        await server.stop(0)
    for code, ms in results:
        print(f"{code:<20} {ms:8.1f} ms")
    print(dict(collections.Counter(code for code, _ in results)), f"(grpcio {grpc.__version__})")


if __name__ == "__main__":
    asyncio.run(main())
