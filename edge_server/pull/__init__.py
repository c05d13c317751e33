"""Pull mode: a gateway behind NAT dials out to the orchestrator (edge.v1.OrchestratorService),
learns the versions it should run, downloads and installs them through the same path as a
ModelUpdate push, and reports what it runs."""
