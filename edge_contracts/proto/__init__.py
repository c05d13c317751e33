"""Generated protobuf/gRPC code (``make proto``; sources in ``protos/``). Do not edit."""
