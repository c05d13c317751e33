"""The edge gateway: ONNX Runtime over gRPC (console script ``edge-server``)."""

from edge_contracts import __version__

__all__ = ["__version__"]
