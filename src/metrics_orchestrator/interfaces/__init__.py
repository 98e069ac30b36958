"""Entry points: CLI, HTTP API, SQS consumers. Thin: they call application services."""
