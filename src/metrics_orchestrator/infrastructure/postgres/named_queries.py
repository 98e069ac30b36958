"""SQL is kept as SQL: each `sql/*.sql` file holds named queries (`-- name: x`)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import LiteralString, cast

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.M)


@cache
def load_queries(filename: str) -> dict[str, LiteralString]:
    text = resources.files(__package__).joinpath("sql", filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        # Only comment lines before the first statement line are documentation.
        queries[name] = cast(LiteralString, body.strip())
    return queries


def query(filename: str, name: str) -> LiteralString:
    try:
        return load_queries(filename)[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/{filename}") from None
