"""Array parameters for `unnest(...)` statements: one list per column, one element per row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any


def columns(rows: Sequence[Any], **getters: str | Callable[[Any], Any]) -> dict[str, list[Any]]:
    """`columns(runs, run_ids="run_id", payloads=lambda r: jsonb(r.payload))`: per
    parameter name, the attribute (by name) or the value computed from each row."""
    return {
        name: [get(row) for row in rows]
        for name, getter in getters.items()
        for get in [attrgetter(getter) if isinstance(getter, str) else getter]
    }
