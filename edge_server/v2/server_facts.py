"""What the gateway says about itself in the Open Inference Protocol, on either face.

The gRPC servicer (edge_server/grpc/v2_servicer.py) and the REST routes
(edge_server/http/v2_routes.py) answer server and model metadata with these names.
"""

from __future__ import annotations

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
SERVER_NAME = "edge-inference-gateway"
# What this server implements of the protocol's extensions (docs/kserve-v2.md).
EXTENSIONS = ("model_repository", "model_configuration", "statistics")
