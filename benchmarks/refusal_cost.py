"""What one refused call costs a grpc.aio server, next to one answered call.

    python -m benchmarks.refusal_cost [--seconds 4] [--message-bytes 35000]

Three tiny grpc.aio servers in child processes, each driven by h2load at 32 clients:
one answers every call, one refuses every call with RESOURCE_EXHAUSTED through
``context.abort`` (with a retry-after-ms trailer, as the gateway does), one through
``set_code`` + return. With the event loop the only busy thread, calls per second is
the price of a refusal: under a 10x flood every refused call costs about this much of
a core before any admitted work runs, which is what bounds the gateway's overload
behaviour on 2 cores (README, "Performance").
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc

MESSAGE = "model 'm' has 128 requests in progress, the gateway's limit; retry after a short pause"


async def _serve(mode: str, port: int) -> None:
    async def handler(request: bytes, context: grpc.aio.ServicerContext) -> bytes | None:
        if mode == "abort":
            context.set_trailing_metadata((("retry-after-ms", "50"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, MESSAGE)
        if mode == "set-code":
            context.set_trailing_metadata((("retry-after-ms", "50"),))
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            context.set_details(MESSAGE)
            return None
        return b"ok"

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(
            "bench.Refusal", {"Call": grpc.unary_unary_rpc_method_handler(handler)}),)
    )  # fmt: skip
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--message-bytes", type=int, default=35_000, help="request size")
    parser.add_argument("--serve", nargs=2, metavar=("MODE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.serve[0], int(args.serve[1])))
        return 0
    from benchmarks import h2load
    from benchmarks.footprint.server_processes import free_port

    if h2load.binary() is None:
        print("refusal_cost: needs h2load (Debian package nghttp2-client)", file=sys.stderr)
        return 1
    frame = b"\x00" + struct.pack(">I", args.message_bytes) + b"\x00" * args.message_bytes
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("answer", "abort", "set-code"):
            port = free_port()
            child = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.refusal_cost", "--serve", mode, str(port)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert child.stdout is not None
                child.stdout.readline()
                result = h2load.run(
                    f"127.0.0.1:{port}", "/bench.Refusal/Call", frame, 32, args.seconds, 0.5,
                    Path(scratch),
                )  # fmt: skip
            finally:
                child.kill()
                child.wait()
            rate = result.throughput_rps
            each = 1e6 / rate
            print(f"{mode:<9} {rate:8.0f} calls/s  {each:6.0f} us of a saturated event loop each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
