"""Contracts every tier of the edge inference system shares.

``edge_contracts.proto`` holds the Python code generated from ``protos/`` (wire packages
``edge.v1`` and ``inference``), under this project's own import name so that it cannot
collide with other packages called ``edge`` or ``inference``. Beside it: the serving
manifest (``manifest``, ``feedback_policy``), the bundle format (``bundle``), the errors
they raise (``errors``), the one exception -> gRPC status table (``status``) and the error
boundary of every servicer method (``rpc_boundary``), crash-safe writes (``atomic_files``),
retry backoff (``backoff``), the bearer-token interceptor (``credentials``) and what every
command line shares (``cli``). Nothing here imports a tier's package, torch, onnx,
onnxruntime or SQLAlchemy.
"""

# The one version of the distribution: every command reports it and setup.cfg reads it.
__version__ = "0.1.0"
