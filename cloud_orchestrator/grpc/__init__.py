"""Transport of the orchestrator: the OrchestratorService servicer, its server, and the
client of a gateway's ModelService. Only this package imports grpc and ``*_pb2``."""
