"""Results back to the cloud: per model version aggregates (and, only when the model's
privacy policy allows it, hard examples) recorded off the request path into a durable
SQLite outbox and uploaded when the orchestrator is reachable."""
