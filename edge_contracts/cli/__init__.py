"""What every command line (edge-server, edge-client, model-tools, edge-orchestrator)
shares: one-line usage errors, operator files read with one-line mistakes, TLS files
checked before a server starts, and why a port could not be listened on."""
