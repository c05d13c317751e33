"""The memory budget (security review finding 5): a flood of large PNGs on a real gateway
process. Calls beyond the budget are refused at once with RESOURCE_EXHAUSTED and a retry
hint, before their images are decoded; the gateway's peak RSS stays near baseline +
budget, health answers during the flood, admitted calls are answered as when alone, and
RSS goes back near baseline afterwards (edge_server/runtime/allocator.py)."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_contracts.retry_hint import retry_after_ms
from tests.support.model_factory import build_model_root
from tests.support.processes import ServerProcess

MIB = 1024 * 1024
BUDGET = 32 * MIB
SIDE = 2000  # 4 Mpixel gray noise: a ~4 MB PNG, 4 MB decoded
CALLS = 16  # 64 MB on the wire in all
PAYLOAD_CHANNEL = [("grpc.max_send_message_length", 16 * MIB)]


def noise_png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def memory_mb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of ``pid``, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) // 1024
    return found


@pytest.fixture
def gateway(tmp_path: Path) -> ServerProcess:
    root = build_model_root(tmp_path / "models")
    server = ServerProcess(
        [
            "--model-root", str(root), "--default-model", "gray",
            "--memory-budget-bytes", str(BUDGET), "--preprocess-workers", "2",
            "--workers", "1",  # the budget and the RSS measured are one process's
        ]
    )  # fmt: skip
    try:
        server.wait_serving()
        yield server
    finally:
        server.terminate()


async def test_a_flood_of_large_pngs_stays_within_the_budget(gateway: ServerProcess) -> None:
    images = [noise_png(seed) for seed in range(4)]
    pid = gateway.proc.pid
    async with (
        grpc.aio.insecure_channel(gateway.target, options=PAYLOAD_CHANNEL) as channel,
        grpc.aio.insecure_channel(gateway.target) as health_channel,
    ):
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        alone = [
            await stub.Predict(inference_pb2.PredictRequest(image=image, top_k=3), timeout=30)
            for image in images
        ]
        await asyncio.sleep(1.5)  # the warm-up's trim (rate-limited to one a second)
        baseline = memory_mb(pid)["VmRSS"]
        health_stub = inference_pb2_grpc.InferenceServiceStub(health_channel)
        health_s: list[float] = []
        flooding = True

        async def probe() -> None:
            while flooding:
                asked = time.perf_counter()
                await health_stub.Health(inference_pb2.HealthRequest(), timeout=10)
                health_s.append(time.perf_counter() - asked)
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe())
        calls = [
            stub.Predict(inference_pb2.PredictRequest(image=images[i % 4], top_k=3), timeout=60)
            for i in range(CALLS)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        flooding = False
        await prober
        peak = memory_mb(pid)["VmHWM"]
        await asyncio.sleep(3)  # released, trimmed in the background
        after = memory_mb(pid)["VmRSS"]

    answered = [
        (i, r) for i, r in enumerate(results) if isinstance(r, inference_pb2.PredictResponse)
    ]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(answered) + len(refused) == CALLS, results
    assert answered and refused, f"{len(answered)} answered, {len(refused)} refused"
    for error in refused:
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "memory budget of 32.0 MiB" in (error.details() or "")
        hint = retry_after_ms(error.trailing_metadata())
        assert hint is not None and hint >= 10
    for i, reply in answered:
        expected = alone[i % 4]
        assert (reply.class_id, reply.confidence) == (expected.class_id, expected.confidence)
        assert list(reply.top_k) == list(expected.top_k)
    assert max(health_s) < 1.0, f"health took {max(health_s):.2f} s during the flood"
    # The budget bounds what calls hold; the margin is what gRPC holds before Python sees
    # a call: every message of the flood received at once, 64 MB, up to three times over
    # (the wire buffer, the parsed message, the bytes Python takes from it). Measured peaks
    # were 139-169 MiB over baseline, the same with the budget out of the way: arrival is
    # bounded by --max-concurrent-rpcs and --max-message-bytes, not by the budget.
    margin = 3 * CALLS * len(images[0]) // MIB
    print(f"RSS MiB: baseline {baseline}, peak {peak}, after {after}; {len(refused)} refused")
    assert peak - baseline < BUDGET // MIB + margin, (baseline, peak, after)
    # Back at baseline (glibc kept 330 MB of a 32-call flood before
    # edge_server/runtime/allocator.py; refused calls' payloads stayed in exception cycles
    # until the trimmer collected them: 87 MiB over baseline then, 2-5 MiB now).
    assert after - baseline < 24, (baseline, peak, after)
