from __future__ import annotations

from psycopg import Connection
from psycopg.rows import TupleRow


class PostgresDispatchRepository:
    def __init__(self, conn: Connection[TupleRow]) -> None:
        self._conn = conn
