"""Adapters to the outside world: PostgreSQL, AWS, configuration, logging."""
