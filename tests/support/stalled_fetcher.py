"""``python -m tests.support.stalled_fetcher TARGET GATEWAY_SECRET COUNT``: COUNT
FetchModel calls of "big" 1 as gw-1, each on its own connection; prints ``ready`` once
each has its first block. The test then stops this process (SIGSTOP: no byte is read
from its sockets) and later continues it (SIGCONT), after which every call is read to
its end and one JSON line gives each call's final status code."""

from __future__ import annotations

import asyncio
import json
import sys

import grpc

from edge_contracts.proto.edge.v1 import orchestrator_pb2, orchestrator_pb2_grpc


async def main(target: str, secret: str, count: int) -> None:
    credential = (("authorization", f"Bearer {secret}"),)
    request = orchestrator_pb2.FetchModelRequest(
        gateway_id="gw-1", model_name="big", model_version="1"
    )
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(count)
    ]
    calls = []
    for channel in channels:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        call = stub.FetchModel(request, metadata=credential, timeout=120)
        await call.read()
        calls.append(call)
    print("ready", flush=True)
    sys.stdin.readline()  # the test writes a line once it continued this process
    codes = []
    for call in calls:
        try:
            while await call.read() is not grpc.aio.EOF:
                pass
            codes.append("OK")
        except grpc.aio.AioRpcError as err:
            codes.append(f"{err.code().name}: {err.details()}")
    print(json.dumps(codes), flush=True)
    for channel in channels:
        await channel.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
