"""Several gateway processes on one port: a primary that owns the model lifecycle and
replicas that serve inference and follow the primary's models (``--workers``)."""
