"""PostgreSQL adapters: connection pool, unit of work, migrations, repositories."""
