"""What one Predict costs on the event loop, without gRPC: a microbenchmark.

    python -m benchmarks.request_path [--kinds tensor,image,pixels] [--requests 2000]
                                      [--repeats 7] [--model digits] [--profile]

Builds the gateway's request path the way ``edge_server.app.Gateway`` wires it
(GatewayMetrics as a ServingCatalogue listener, Predictor with the default batching,
queue and inline settings, a ShadowRunner as the lifecycle installs one) and calls
``InferenceServicer.Predict`` directly with an already-parsed request: proto ->
``to_predict_input`` -> ``observed`` (metrics) -> ``Predictor.predict`` (statistics)
-> ``to_predict_response``. Once a model is measured as tiny it runs inline, so for
the digits model this is the per-request Python work the event loop does, minus
grpc itself. Reports microseconds per request (median and spread of ``--repeats``
passes of ``--requests`` calls) next to a bare ``session.run`` in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import models, payloads
from edge_contracts.proto.edge.v1 import inference_pb2
from edge_server.catalogue.on_disk import DiskCatalogue
from edge_server.catalogue.serving import ServingCatalogue
from edge_server.grpc.inference_servicer import GatewayInfo, InferenceServicer
from edge_server.inference.predictor import BatchingDefaults, Predictor
from edge_server.inference.shadow import ShadowRunner
from edge_server.metrics import GatewayMetrics
from edge_server.runtime.onnx_session import LoadedSession, SessionConfig
from edge_server.settings import Settings

KINDS = ("tensor", "image", "pixels")


class _Context:
    """The part of grpc.aio.ServicerContext that Predict uses on success."""

    def time_remaining(self) -> float | None:
        return None  # h2load and most clients send no grpc-timeout

    async def abort(self, code: Any, details: str = "", *args: Any) -> None:
        raise RuntimeError(f"Predict failed: {code} {details}")


@contextmanager
def _model_root(name: str) -> Iterator[Path]:
    """A model root holding just the shipped ``name`` model (a temp copy)."""
    with tempfile.TemporaryDirectory(prefix="request-path-") as tmp:
        shutil.copytree(models.EXAMPLES / name, Path(tmp) / name)
        yield Path(tmp)


class RequestPath:
    """A gateway's servicer, predictor and metrics, with the default settings."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.metrics = GatewayMetrics()
        config = SessionConfig(
            intra_op_threads=settings.effective_intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            graph_optimization=settings.graph_optimization,
        )
        self.models = ServingCatalogue(
            DiskCatalogue(root), functools.partial(LoadedSession, config=config)
        )
        self.models.add_listener(self.metrics.on_model_state)
        self.pools = (ThreadPoolExecutor(1), ThreadPoolExecutor(1))
        self.predictor = Predictor(
            self.models,
            *self.pools,
            max_queue_size=settings.max_queue_size,
            max_image_pixels=settings.max_image_pixels,
            batching=BatchingDefaults(
                settings.batching, settings.max_batch_size, settings.max_queue_delay_us
            ),
            on_batch=self.metrics.observe_batch,
            inline_threshold_us=settings.inline_threshold_us,
        )
        self.metrics.track_queue_depth(self.models, self.predictor.queue_depth)

        async def run_shadow(model: Any, feeds: Any) -> Any:
            return (await self.predictor.run(model, feeds, None)).outputs

        self.predictor.shadow = ShadowRunner(self.models, run_shadow, settings.shadow_sample_rate)
        self.servicer = InferenceServicer(
            self.predictor, self.models, self.metrics, GatewayInfo("bench", "0")
        )
        self.context: Any = _Context()

    async def load(self) -> None:
        self.models.discover()
        await self.models.load_all()

    async def calls(self, request: inference_pb2.PredictRequest, count: int) -> float:
        """Seconds for ``count`` sequential Predict calls."""
        predict = self.servicer.Predict
        context = self.context
        started = time.perf_counter()
        for _ in range(count):
            await predict(request, context)
        return time.perf_counter() - started

    def close(self) -> None:
        for pool in self.pools:
            pool.shutdown()


def _request(model: str, kind: str, root: Path) -> inference_pb2.PredictRequest:
    bench_model = models.MODELS[model]
    message = payloads.payload(bench_model, kind, root).message
    return inference_pb2.PredictRequest.FromString(message)


def _raw_run_us(path: RequestPath, model: str, request: inference_pb2.PredictRequest) -> float:
    """Median microseconds of a bare session.run on the tensor request's input."""
    from edge_server.grpc.converters import tensor_to_array

    serving = path.models.resolve(model)
    feeds = {serving.inputs[0].name: tensor_to_array(request.tensor)}
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(500):
            serving.session.run(feeds)
        runs.append((time.perf_counter() - started) / 500 * 1e6)
    return statistics.median(runs)


async def _measure(args: argparse.Namespace, root: Path) -> int:
    path = RequestPath(root, Settings())
    await path.load()
    requests = {kind: _request(args.model, kind, root) for kind in args.kinds}
    tensor_request = (
        requests["tensor"] if "tensor" in requests else _request(args.model, "tensor", root)
    )
    raw_us = _raw_run_us(path, args.model, tensor_request)
    print(f"{args.model}: bare session.run {raw_us:.1f} us")
    version = path.models.resolve(args.model).version
    for kind, request in requests.items():
        await path.calls(request, 200)  # once measured as tiny, the model runs inline
        inline = path.predictor.inline_policy.inline(args.model, version, kind != "tensor")
        passes = [
            await path.calls(request, args.requests) / args.requests * 1e6
            for _ in range(args.repeats)
        ]
        median = statistics.median(passes)
        print(
            f"{kind:>7}: {median:7.1f} us/request median of {args.repeats} x {args.requests} "
            f"(min {min(passes):.1f}, max {max(passes):.1f}; {median / raw_us:.1f}x session.run; "
            f"{'inline' if inline else 'through the pools'})"
        )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await path.calls(request, args.requests)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    counts = path.metrics.registry.get_sample_value(
        "edge_requests_total",
        {"method": "Predict", "model": args.model, "version": "1", "code": "OK"},
    )
    print(f"edge_requests_total OK: {counts:.0f}")
    path.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits", choices=("digits", "digits-int8"))
    parser.add_argument("--kinds", default="tensor,image,pixels")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="cProfile one pass per kind")
    args = parser.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(args.kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    np.random.seed(0)
    with _model_root(args.model) as root:
        return asyncio.run(_measure(args, root))


if __name__ == "__main__":
    sys.exit(main())
