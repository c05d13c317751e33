"""`edge-server` with a proposed change applied at run time, to measure it before it is made.

    python -m benchmarks.patched_gateway PATCH[,PATCH...] -- <edge-server flags>

The gateway's code is not edited: each patch wraps a library call or a method from
the outside, so the benchmark can put a number on a proposal (see
benchmarks/README.md and ``--overload-patches`` of benchmarks/run_options.py). Patches:

- ``streams=N``: HTTP/2 ``grpc.max_concurrent_streams`` = N per connection: a client
  cannot have more than N calls in flight on one connection; the rest wait on its side.
- ``pending=SOFT:HARD``: gRPC core's backlog of calls Python has not picked up yet
  (``grpc.server.max_pending_requests`` and ``..._hard_limit``, defaults 1000 and
  3000): beyond SOFT core refuses new calls itself with RESOURCE_EXHAUSTED, more
  likely the nearer HARD, without waiting for the event loop.
- ``grpcopt=NAME:INT``: any integer gRPC core server option, e.g.
  ``grpcopt=grpc.http2.bdp_probe:0``.
- ``reuseport``: bind with SO_REUSEPORT so several gateway processes share one port
  (the kernel spreads connections across them); run two of them for "2 processes".
- ``nospin``: ONNX Runtime intra-op threads do not spin-wait between runs
  (``session.intra_op.allow_spinning = 0``), so 2 workers x 2 threads share 2 cores.
- ``switch=SECONDS``: ``sys.setswitchinterval`` (Python's default is 0.005): how long
  a thread holding the GIL keeps it when the event loop thread asks for it.
- ``fast-classify``: softmax and top-k in plain Python for outputs of at most 64
  classes (numpy's per-call overhead dominates at that size); same results. Built into
  the gateway since (edge_server/inference/postprocess.py): measures nothing new now.
- ``no-metrics``: Prometheus request/stage metrics and per-version statistics become
  no-ops (an upper bound on what cheaper bookkeeping could save; measured +6.7 % on digits
  with ``--workers 1`` before edge_server/request_series.py took the locks out).
"""

from __future__ import annotations

import sys
from typing import Any


def _server_options(extra: dict[str, Any]) -> None:
    import grpc

    original = grpc.aio.server

    def server(*args: Any, **kwargs: Any) -> Any:
        options = [o for o in kwargs.get("options") or [] if o[0] not in extra]
        kwargs["options"] = options + list(extra.items())
        return original(*args, **kwargs)

    grpc.aio.server = server


def _no_metrics() -> None:
    from edge_server.inference import statistics
    from edge_server.metrics import GatewayMetrics

    GatewayMetrics.observe_request = lambda self, *a, **k: None  # type: ignore[method-assign]
    GatewayMetrics.observe_success = lambda self, *a, **k: None  # type: ignore[method-assign]
    GatewayMetrics.observe_batch = lambda self, *a, **k: None  # type: ignore[method-assign]
    statistics.StatisticsBook.record_success = lambda self, *a, **k: None  # type: ignore[method-assign]


def _no_spin() -> None:
    import onnxruntime as ort

    original = ort.InferenceSession.__init__

    def init(self: Any, path: Any, sess_options: Any = None, *args: Any, **kwargs: Any) -> None:
        options = sess_options or ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        original(self, path, options, *args, **kwargs)

    ort.InferenceSession.__init__ = init


def _fast_classify() -> None:
    import math

    import numpy as np

    from edge_server.inference import postprocess, predictor

    original = postprocess.classify

    def classify(output: Any, manifest: Any, top_k: int) -> Any:
        scores = postprocess.first_row_scores(output)
        if scores.size > 64 or scores.dtype.kind != "f":
            return original(output, manifest, top_k)
        values = scores.tolist()
        if manifest.output_kind == "probabilities":
            probabilities = values
        else:
            peak = max(values)
            exps = [math.exp(v - peak) for v in values]
            total = sum(exps)
            probabilities = [float(np.float32(e / total)) for e in exps]
        k = min(top_k or postprocess.DEFAULT_TOP_K, len(probabilities))
        best = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])[:k]
        entries = tuple(
            postprocess.ClassScore(i, manifest.label_for(i), probabilities[i]) for i in best
        )
        top = entries[0]
        return postprocess.Classification(top.class_id, top.label, top.score, entries)

    postprocess.classify = classify
    predictor.classify = classify  # type: ignore[attr-defined]


def apply(patches: list[str]) -> None:
    options: dict[str, Any] = {}
    for patch in patches:
        name, _, value = patch.partition("=")
        if name == "streams":
            options["grpc.max_concurrent_streams"] = int(value)
        elif name == "pending":
            soft, _, hard = value.partition(":")
            options["grpc.server.max_pending_requests"] = int(soft)
            options["grpc.server.max_pending_requests_hard_limit"] = int(hard or soft)
        elif name == "grpcopt":  # any gRPC core server option: grpcopt=NAME:INT
            key, _, number = value.rpartition(":")
            options[key] = int(number)
        elif name == "reuseport":
            options["grpc.so_reuseport"] = 1
        elif name == "switch":
            sys.setswitchinterval(float(value))
        elif name == "nospin":
            _no_spin()
        elif name == "fast-classify":
            _fast_classify()
        elif name == "no-metrics":
            _no_metrics()
        elif name:
            raise SystemExit(f"unknown patch {patch!r}")
    if options:
        _server_options(options)


def main() -> int:
    if len(sys.argv) < 2 or "--" not in sys.argv:
        raise SystemExit(__doc__)
    split = sys.argv.index("--")
    apply([p.strip() for p in ",".join(sys.argv[1:split]).split(",") if p.strip()])
    from edge_server.cli import main as edge_main

    return edge_main(sys.argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main())
