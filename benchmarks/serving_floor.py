"""The serving floor: the pipeline limit's own work behind a bare Python server.

    python -m benchmarks.serving_floor --model-dir DIR --protocol {grpc-aio,grpc-sync,http}
        [--port 0]

The in-process pipeline limit (pipeline_limit.py) has no server in the way; any server
adds a transport and a hop into its pool. This module is the least a Python server can
add: exactly the limit's recipe (``Recipe.preprocess``) and session (``session(model, 1)``)
run in a pool of 2 threads, behind a server that does nothing else (no admission, no
metrics, no batching, one model):

- ``grpc-aio``: ``grpc.aio`` (the gateway's flavour), Predict awaits one
  ``run_in_executor`` hop;
- ``grpc-sync``: ``grpc.server(ThreadPoolExecutor(2))``, the work in the handler;
- ``http``: aiohttp (the gateway's HTTP library), ``POST /predict`` reads the multipart
  ``image`` field, then one ``run_in_executor`` hop; answers ``{"class_id", "confidence"}``.

The ratio of these to the limit, measured in the same repeats (benchmarks/http_face),
is the ceiling of any Python server's ratio on this machine. Prints ``listening: PORT``
once bound; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from aiohttp import BodyPartReader, web

from benchmarks.pipeline_limit import Recipe, session
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc

PROTOCOLS = ("grpc-aio", "grpc-sync", "http")
THREADS = 2  # one per core, as in the limit's own arrangements
NOT_AN_IMAGE = "the image bytes are not a picture PIL can decode (send a JPEG or PNG)"


class Work:
    """The limit's recipe and session for one model: image bytes -> (class, confidence)."""

    def __init__(self, model_dir: Path) -> None:
        self.recipe = Recipe.for_model(model_dir)
        self.session = session(model_dir / "model.onnx", 1)
        self.input = self.session.get_inputs()[0].name
        self.model_name = model_dir.parent.name

    def predict(self, data: bytes) -> tuple[int, float]:
        """Raises OSError (PIL's word) on bytes that are no picture."""
        scores = self.session.run(None, {self.input: self.recipe.preprocess(data)})[0][0]
        best = int(np.argmax(scores))
        shifted = np.exp(scores - scores[best])  # softmax of the best class, overflow-free
        return best, float(1.0 / shifted.sum())

    def answer(self, data: bytes) -> inference_pb2.PredictResponse:
        class_id, confidence = self.predict(data)
        return inference_pb2.PredictResponse(
            model_name=self.model_name, class_id=class_id, confidence=confidence
        )


class AioServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, work: Work, pool: ThreadPoolExecutor) -> None:
        self.work, self.pool = work, pool

    async def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.PredictResponse:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, self.work.answer, request.image)
        except OSError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, NOT_AN_IMAGE)
            raise  # abort raised already; this line is for the type checker


class SyncServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, work: Work) -> None:
        self.work = work

    def Predict(
        self, request: inference_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> inference_pb2.PredictResponse:
        try:
            return self.work.answer(request.image)
        except OSError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, NOT_AN_IMAGE)
            raise


async def _image_field(request: web.Request) -> bytes | None:
    """The multipart ``image`` field's bytes; None if the body has none."""
    if request.content_type != "multipart/form-data":
        return None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "image":
                return bytes(await part.read())
    except (ValueError, KeyError):  # aiohttp's words for a malformed body or boundary
        return None
    return None


def http_app(work: Work, pool: ThreadPoolExecutor) -> web.Application:
    async def predict(request: web.Request) -> web.Response:
        data = await _image_field(request)
        if data is None:
            error = (
                "send the picture as the multipart/form-data field 'image' (curl -F image=@a.jpg)"
            )
            return web.json_response({"error": error}, status=400)
        loop = asyncio.get_running_loop()
        try:
            class_id, confidence = await loop.run_in_executor(pool, work.predict, data)
        except OSError:
            return web.json_response({"error": NOT_AN_IMAGE}, status=400)
        return web.json_response({"class_id": class_id, "confidence": confidence})

    app = web.Application()
    app.router.add_post("/predict", predict)
    return app


async def _until_sigterm() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


async def serve_aio(work: Work, port: int) -> None:
    server = grpc.aio.server()
    pool = ThreadPoolExecutor(THREADS)
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        AioServicer(work, pool),  # type: ignore[abstract]  # Predict only
        server,
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening: {bound}", flush=True)
    await _until_sigterm()
    await server.stop(1)
    pool.shutdown()


async def serve_http(work: Work, port: int) -> None:
    pool = ThreadPoolExecutor(THREADS)
    runner = web.AppRunner(http_app(work, pool), access_log=None)  # no per-request logging
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening: {runner.addresses[0][1]}", flush=True)
    await _until_sigterm()
    await runner.cleanup()
    pool.shutdown()


def serve_sync(work: Work, port: int) -> None:
    server = grpc.server(ThreadPoolExecutor(THREADS))
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(
        SyncServicer(work),  # type: ignore[abstract]  # Predict only
        server,
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(f"listening: {bound}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="serving_floor", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.model_dir / "model.onnx").is_file():
        parser.error(f"{args.model_dir} has no model.onnx (give a model version folder)")
    work = Work(args.model_dir)
    if args.protocol == "grpc-sync":
        serve_sync(work, args.port)
    else:
        asyncio.run((serve_aio if args.protocol == "grpc-aio" else serve_http)(work, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
