"""Slow and oversized HTTP clients against a real gateway process: a slowloris trickling
its request head and a client stalling in its body are cut off by the gateway, an
oversized body is refused, and gRPC Predict answers every call meanwhile."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import requests

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc
from edge_server.http.bodies import BODY_TIMEOUT_S
from edge_server.http.server import READ_TIMEOUT_S
from tests.support.http_gateway import DIGIT_3, MAX_MESSAGE_BYTES
from tests.support.processes import ServerProcess

SLOWLORIS = 16
MARGIN_S = 5.0  # the gateway's loop timers, on a busy 2-core machine


def trickle_head(port: int, stop: threading.Event) -> float:
    """Send a request head a byte at a time; seconds until the gateway closed it."""
    started = time.monotonic()
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        for byte in head:
            if stop.is_set():
                break
            try:
                conn.sendall(bytes([byte]))
                if conn.recv(1) == b"":  # closed by the gateway
                    break
            except TimeoutError:
                continue  # nothing to read yet: the head is still open
            except OSError:
                break
    return time.monotonic() - started


def stall_body(port: int) -> bytes:
    """A complete head promising 1000 bytes of image, then 10 of them and silence."""
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT_S + MARGIN_S) as conn:
        conn.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 1000\r\n\r\n" + b"\x89PNG\r\n\x1a\n\0\0"
        )
        return conn.recv(4096)


def grpc_predictions(target: str, stop: threading.Event) -> int:
    """Predict in a loop until ``stop``; each call must succeed within its deadline."""
    calls = 0
    with grpc.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        while not stop.is_set():
            reply = stub.Predict(
                inference_pb2.PredictRequest(image=DIGIT_3.read_bytes()), timeout=3
            )
            assert reply.class_id == 3
            calls += 1
            time.sleep(0.05)
    return calls


def test_slow_and_oversized_clients_are_cut_off_while_grpc_answers(
    server: ServerProcess, base: str
) -> None:
    stop = threading.Event()
    with ThreadPoolExecutor(SLOWLORIS + 2) as pool:
        grpc_calls = pool.submit(grpc_predictions, server.target, stop)
        slow_heads = [pool.submit(trickle_head, server.http_port, stop) for _ in range(SLOWLORIS)]
        stalled = pool.submit(stall_body, server.http_port)
        oversized = requests.post(
            f"{base}/predict",
            data=b"\0" * (4 * MAX_MESSAGE_BYTES),
            headers={"Content-Type": "image/png"},
            timeout=10,
        )
        assert oversized.status_code == 413
        assert oversized.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        try:
            held = [future.result(timeout=READ_TIMEOUT_S + MARGIN_S) for future in slow_heads]
            answer = stalled.result(timeout=BODY_TIMEOUT_S + MARGIN_S)
        finally:
            stop.set()
        assert grpc_calls.result(timeout=10) > 10
    # Cut off by the gateway's head timeout, long before the 1000 bytes were sent.
    assert max(held) < READ_TIMEOUT_S + MARGIN_S
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert b'"DEADLINE_EXCEEDED"' in answer
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
