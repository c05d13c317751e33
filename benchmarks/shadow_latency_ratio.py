"""p95 latency ratios of a shadow candidate over the active version when both are the same
network (digits version 2 shadowing version 1 on a real in-process gateway): how far the
ratio the rollout latency gate judges moves on its own, with and without the latency
floor; the numbers behind --latency-floor-ms's default (docs/rollouts.md). Not part of
``make bench``: ``python -m benchmarks.shadow_latency_ratio [--rounds 20 --requests 40]``.

Each round shadows a fresh count of ``--requests`` requests (sequential Predict calls,
the example images in turn) and reads the gateway's evidence counts, as a gated rollout
does; the ratio is judged by cloud_orchestrator/rollouts/gates.py itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
from pathlib import Path

import grpc

from cloud_orchestrator.rollouts.gates import GateConfig, judge
from edge_client.aio_push import push_bundle_async
from edge_client.push_protocol import BundleFile
from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_contracts.shadow_evidence import ShadowEvidence, latency_quantile_us
from edge_server.app import Gateway
from edge_server.inference.shadow import ShadowRunner
from edge_server.settings import Settings
from tests.support.paths import REPO


async def measure(rounds: int, requests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "models"
        shutil.copytree(REPO / "examples" / "models", root)
        settings = Settings.from_values(
            model_root=root, host="127.0.0.1", grpc_port=0, http_port=0,
            trusted_keys=(REPO / "examples" / "keys",), shadow_sample_rate=1.0,
            rollback_window_seconds=0,
        )  # fmt: skip
        gateway = Gateway(settings)
        await gateway.start()
        try:
            await gateway.wait_for_models()
            return await _rounds(gateway, rounds, requests)
        finally:
            await gateway.stop()


async def _rounds(gateway: Gateway, rounds: int, requests: int) -> dict[str, object]:
    images = [p.read_bytes() for p in sorted((REPO / "examples" / "images").glob("*.png"))]
    bundle = BundleFile.read(REPO / "examples" / "bundles" / "digits-2.edgebundle")
    shadow = gateway.parts.shadow
    assert shadow is not None
    floors = {"0 ms": GateConfig(evidence_requests=1, latency_floor_ms=0).checked(),
              "5 ms": GateConfig(evidence_requests=1).checked()}  # fmt: skip
    rows: list[dict[str, float | None]] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.grpc_port}") as channel:
        assert (await push_bundle_async(channel, bundle, mode="shadow")).stage == "SHADOW"
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for _ in range(rounds):
            before = _evidence(shadow)
            while _evidence(shadow).since(before).requests < requests:
                for image in images:
                    await stub.Predict(
                        inference_pb2.PredictRequest(model_name="digits", image=image)
                    )
                    await asyncio.sleep(0.002)  # let the shadow pair finish: none skipped
            found = _evidence(shadow).since(before)
            row: dict[str, float | None] = {
                "candidate_p95_us": latency_quantile_us(found.candidate_latency, 0.95),
                "active_p95_us": latency_quantile_us(found.active_latency, 0.95),
            }
            for name, config in floors.items():
                row[f"ratio_floor_{name}"] = judge(found, config).latency_ratio
            rows.append(row)
    summary: dict[str, object] = {"rounds": rounds, "requests_per_round": requests}
    for name in floors:
        ratios = [r[f"ratio_floor_{name}"] or 0.0 for r in rows]
        summary[f"floor {name}"] = {
            "median_ratio": round(statistics.median(ratios), 2),
            "max_ratio": round(max(ratios), 2),
            "rounds_above_1.5": sum(r > 1.5 for r in ratios),
        }
    summary["rounds_detail"] = rows
    return summary


def _evidence(shadow: ShadowRunner) -> ShadowEvidence:
    tally = shadow.tally("digits", "2")
    return tally.evidence() if tally is not None else ShadowEvidence()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.rounds, args.requests)), indent=2))


if __name__ == "__main__":
    main()
