"""Fleet scale benchmark (``make bench-fleet``): simulated pull gateways against real
``edge-orchestrator serve`` processes on SQLite and PostgreSQL (see benchmarks/README.md)."""
