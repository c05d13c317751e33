"""V2 shared-memory helpers for tests: /dev/shm objects, region references, app tokens
(the --shared-memory-app-tokens file) and channels that send a bearer token."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from edge_contracts.proto.inference import grpc_service_pb2 as pb
from edge_server.v2.shared_memory import SHM_DIR

TOKEN_A = "app-a-token-0123456789abcdef"
TOKEN_B = "app-b-token-fedcba9876543210"
MANAGEMENT_TOKEN = "management-token-0123456789"
X = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
K = np.array([3, 1, 4, 1], dtype=np.int64)


class ShmObject:
    """A POSIX shared-memory object made the way shm_open makes one: a /dev/shm file."""

    def __init__(self, size: int) -> None:
        self.key = f"/edge-test-{uuid.uuid4().hex[:12]}"
        self.path = SHM_DIR / self.key[1:]
        with open(self.path, "wb") as out:
            out.truncate(size)

    def put(self, offset: int, data: bytes) -> None:
        with open(self.path, "r+b") as out:
            out.seek(offset)
            out.write(data)

    def get(self, offset: int, size: int) -> bytes:
        with open(self.path, "rb") as source:
            source.seek(offset)
            return source.read(size)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def new_object(made: list[ShmObject], size: int) -> ShmObject:
    obj = ShmObject(size)
    made.append(obj)
    return obj


def write_app_tokens(path: Path, apps: dict[str, tuple[int, str]]) -> Path:
    """The --shared-memory-app-tokens file: app -> (uid, token), mode 600."""
    lines = ["# app  uid  token"] + [f"{app} {uid} {token}" for app, (uid, token) in apps.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def two_apps(folder: Path) -> Path:
    """Apps "a" and "b", both bound to this process's uid (it creates the objects)."""
    return write_app_tokens(
        folder / "shm-apps", {"a": (os.getuid(), TOKEN_A), "b": (os.getuid(), TOKEN_B)}
    )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class _Bearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *bearer(self._token))
        return await continuation(details._replace(metadata=metadata), request)


def channel_as(target: str, token: str) -> grpc.aio.Channel:
    """A channel whose every unary call carries ``token``."""
    return grpc.aio.insecure_channel(target, interceptors=[_Bearer(token)])


def shm_params(region: str, byte_size: int, offset: int = 0) -> dict[str, pb.InferParameter]:
    params = {
        "shared_memory_region": pb.InferParameter(string_param=region),
        "shared_memory_byte_size": pb.InferParameter(int64_param=byte_size),
    }
    if offset:
        params["shared_memory_offset"] = pb.InferParameter(int64_param=offset)
    return params


def request_x_from_region(region: str, offset: int = 0) -> pb.ModelInferRequest:
    """twoheads' x from shared memory, k inline (raw_input_contents holds only k)."""
    return pb.ModelInferRequest(
        model_name="twoheads",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP32", shape=[4, 3], parameters=shm_params(region, 48, offset)
            ),
            pb.ModelInferRequest.InferInputTensor(name="k", datatype="INT64", shape=[4]),
        ],
        raw_input_contents=[K.tobytes()],
    )


def request_x_inline() -> pb.ModelInferRequest:
    return pb.ModelInferRequest(
        model_name="twoheads",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32", shape=[4, 3]),
            pb.ModelInferRequest.InferInputTensor(name="k", datatype="INT64", shape=[4]),
        ],
        raw_input_contents=[X.tobytes(), K.tobytes()],
    )


async def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value.code()


async def failure_of(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call  # type: ignore[misc]
    return failure.value
