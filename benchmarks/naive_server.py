"""The naive reference server of issue 6, measured in the same run as the gateway.

    python -m benchmarks.naive_server --model-dir DIR [--port 0] [--echo] [--aio]

What a first attempt looks like: synchronous ``grpc.server`` with a pool of 10 threads,
one ONNX Runtime session (default options), and per call: decode the image with PIL or
take the tensor, ``session.run`` at batch 1, argmax, reply. No batching, no admission
control, no metrics. ``--echo`` answers a fixed response without touching the model:
the floor of Python gRPC on this machine; ``--aio`` serves the same with ``grpc.aio``
(the gateway's server flavour) instead. Prints ``listening: PORT`` once bound.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from benchmarks.pipeline_limit import Recipe
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc


class NaiveServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, model_dir: Path, echo: bool) -> None:
        self.session = ort.InferenceSession(
            str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        self.recipe = Recipe.for_model(model_dir)
        self.echo = echo
        self.fixed = inference_pb2.PredictResponse(model_name=model_dir.parent.name, class_id=1)

    def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> inference_pb2.PredictResponse:
        if self.echo:
            return self.fixed
        if request.WhichOneof("input") == "image":
            x = self.recipe.preprocess(request.image)
        else:
            x = np.frombuffer(request.tensor.data, np.float32).reshape(tuple(request.tensor.shape))
        logits = self.session.run(None, {self.input: x})[0][0]
        best = int(np.argmax(logits))
        return inference_pb2.PredictResponse(
            model_name=request.model_name, class_id=best, confidence=float(logits[best])
        )


class AioEchoServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, fixed: inference_pb2.PredictResponse) -> None:
        self.fixed = fixed

    async def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.PredictResponse:
        return self.fixed


async def serve_aio(servicer: NaiveServicer, port: int) -> None:
    import asyncio

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        AioEchoServicer(servicer.fixed),  # type: ignore[abstract]
        server,
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening: {bound}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--aio", action="store_true", help="grpc.aio echo server")
    args = parser.parse_args(argv)
    if args.aio:
        import asyncio

        servicer = NaiveServicer(args.model_dir, echo=True)  # type: ignore[abstract]
        asyncio.run(serve_aio(servicer, args.port))
        return 0
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=10),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        NaiveServicer(args.model_dir, args.echo),  # type: ignore[abstract]
        server,
    )
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening: {port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
