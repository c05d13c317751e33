"""The console's JSON API (/api/v1/...), one module per resource; docs/console.md lists
the routes for scripts."""
