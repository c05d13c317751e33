"""The HTTP face and the fast default configuration, side by side (`make bench`).

``python -m benchmarks.http_face [--quick]``: the gateway as a user starts it (no flags),
its gRPC Predict and HTTP ``/predict`` under the same load as the baselines the issue
names: a naive grpcio server, the reference design's Flask server and the in-process
pipeline limit, repeated, with the medians and the targets judged. See phase.py.
"""
