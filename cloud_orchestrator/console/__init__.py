"""The fleet console: web pages and the JSON API they use, served by ``edge-orchestrator
serve --http-port`` on the orchestrator's own event loop (docs/console.md)."""
