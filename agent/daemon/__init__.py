"""The long-running agent: scheduler, reloads, metrics and HTTP server (its state store is
`dijkwacht.state`, which `dijkwacht report` reads too)."""
