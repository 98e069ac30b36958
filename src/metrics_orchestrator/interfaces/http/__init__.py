"""The HTTP API (SPEC §6.3): FastAPI over the same application services as the CLI."""
