"""Rows read by column name (`dict_row`), never by position: a column added to a SELECT or
moved in it cannot silently shift the meaning of `row[22]`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, LiteralString

from psycopg import Connection
from psycopg.rows import TupleRow, dict_row

Row = dict[str, Any]


def fetch_all(
    conn: Connection[TupleRow], sql: LiteralString, params: Mapping[str, object]
) -> list[Row]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def fetch_one(
    conn: Connection[TupleRow], sql: LiteralString, params: Mapping[str, object]
) -> Row | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchone()
