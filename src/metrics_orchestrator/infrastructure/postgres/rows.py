"""Rows read by column name (`dict_row`), never by position: a column added to a SELECT or
moved in it cannot silently shift the meaning of `row[22]`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING, Any, LiteralString, TypeVar

from psycopg import Connection
from psycopg.rows import TupleRow, dict_row

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Row = dict[str, Any]

_Record = TypeVar("_Record", bound="DataclassInstance")


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


def record(cls: type[_Record], row: Row, *, prefix: str = "", **read_otherwise: object) -> _Record:
    """The dataclass `cls` from a row: each field from the column of its name (after
    `prefix`, for a row holding two of a kind), except the fields given in `read_otherwise`
    (a status read into its enum, a column named otherwise).

    Every field the constructor takes is read, defaulted or not: a SELECT that lacks a column
    fails loudly here.
    """
    from_columns = {
        name: row[column] for name, column in _columns(cls, prefix) if name not in read_otherwise
    }
    return cls(**from_columns, **read_otherwise)


@cache
def _columns(cls: type[DataclassInstance], prefix: str) -> tuple[tuple[str, str], ...]:
    """(field, column) pairs, computed once per class and prefix: rows are read in hot loops."""
    return tuple((field.name, f"{prefix}{field.name}") for field in fields(cls) if field.init)
