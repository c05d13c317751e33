"""Channel options shared by both clients: message limits and the retry policy.

Only idempotent calls retry: Predict (a pure function of its input), Health and
ListModels, and only on UNAVAILABLE (the gateway restarting, a model loading, a
connection that could not be made). Streams and management changes never retry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT",
    "RETRIED_METHODS",
    "SERVICE_CONFIG",
    "channel_options",
]

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# A retried call keeps its request in memory; requests above this are not retried.
RETRY_BUFFER_BYTES = 16 * 1024 * 1024

RETRIED_METHODS: tuple[tuple[str, str], ...] = (
    ("edge.v1.InferenceService", "Predict"),
    ("edge.v1.InferenceService", "Health"),
    ("edge.v1.ModelService", "ListModels"),
)

SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{"service": service, "method": method} for service, method in RETRIED_METHODS],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def channel_options(
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    extra: Sequence[tuple[str, Any]] = (),
) -> list[tuple[str, Any]]:
    """gRPC channel options; entries of ``extra`` replace defaults of the same name."""
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be positive, not {max_message_bytes}")
    options: dict[str, Any] = {
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_receive_message_length": max_message_bytes,
        "grpc.enable_retries": 1,
        "grpc.service_config": json.dumps(SERVICE_CONFIG),
        "grpc.per_rpc_retry_buffer_size": min(max_message_bytes, RETRY_BUFFER_BYTES),
    }
    options.update(dict(extra))
    return list(options.items())
