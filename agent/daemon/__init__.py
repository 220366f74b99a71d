"""The long-running agent: scheduler, state store, metrics and HTTP server."""
