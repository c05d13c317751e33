"""Predict requests to the gateways, as cameras would send them: one PNG per request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import grpc

from edge_contracts.proto.edge.v1 import inference_pb2, inference_pb2_grpc

__all__ = ["background", "predict", "send"]


def predict(target: str, image: bytes, model: str = "digits") -> inference_pb2.PredictResponse:
    with grpc.insecure_channel(target) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        reply: inference_pb2.PredictResponse = stub.Predict(
            inference_pb2.PredictRequest(model_name=model, image=image), timeout=10
        )
    return reply


def send(targets: Sequence[str], images: Sequence[bytes], model: str = "digits") -> list[int]:
    """Round-robin over the gateways; the predicted class of each image, in order."""
    channels = [grpc.insecure_channel(t) for t in targets]
    try:
        stubs = [inference_pb2_grpc.InferenceServiceStub(c) for c in channels]
        predicted = []
        for i, image in enumerate(images):
            reply = stubs[i % len(stubs)].Predict(
                inference_pb2.PredictRequest(model_name=model, image=image), timeout=10
            )
            predicted.append(int(reply.top_k[0].class_id))
        return predicted
    finally:
        for channel in channels:
            channel.close()


@contextlib.contextmanager
def background(targets: Sequence[str], images: Sequence[bytes]) -> Iterator[dict[str, int]]:
    """Keep sending ``images`` to every gateway until the block ends; yields the count of
    answers per version (what the gateways served while it ran)."""
    served: dict[str, int] = {}
    stop = threading.Event()

    def loop(target: str) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            index = 0
            while not stop.wait(0.01):
                request = inference_pb2.PredictRequest(
                    model_name="digits", image=images[index % len(images)]
                )
                with contextlib.suppress(grpc.RpcError):  # a swap may refuse one request
                    version = stub.Predict(request, timeout=10).model_version
                    served[version] = served.get(version, 0) + 1
                index += 1

    threads = [threading.Thread(target=loop, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    try:
        yield served
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
