"""Observability: structured logging (`financial.pkg.observability.logging`), traces, metrics."""
