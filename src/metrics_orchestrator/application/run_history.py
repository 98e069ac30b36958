"""History at a glance (docs/ui.md, "History"): what the per-metric status grid asks for.

The dashboard's grid has a row per metric and a cell per run. Which rows and cells are decided
here, from what a person typed: the code filter (a substring, or a glob with `*` and `?`), a
status the newest run in view must have, "only failing", and the columns: a row holds a
metric's last N runs (10, 25 or 50; 25 by default), only those created in the last D days
when days are asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from metrics_orchestrator.application.pagination import decode_key_cursor, encode_key_cursor
from metrics_orchestrator.application.ports.queries import GridQuery, GridRow
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.model import RunStatus

RUN_CHOICES = (10, 25, 50)
DEFAULT_RUNS = 25
MAX_DAYS = 366
MAX_CODE_FILTER = 128  # a metric code's own bound (migration 003)
# Rows a page: 100 metrics x 50 cells keeps a page near half a megabyte of HTML; the
# 500-metric catalog is five pages, or one filtered page.
METRICS_PER_PAGE = 100

_GLOB = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_", "*": "%", "?": "_"})


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """The grid's filters and columns, as asked (None: not asked)."""

    code: str | None = None
    status: RunStatus | None = None
    failing_only: bool = False
    runs: int | None = None
    days: int | None = None
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class RunHistory:
    """A page of the grid: its rows in code order, the runs a row holds at most, the start of
    the days in view (None: the last `runs` runs whatever their age), and the next page."""

    rows: list[GridRow]
    runs: int
    since: datetime | None
    generated_at: datetime
    next_cursor: str | None


def code_pattern(text: str | None) -> str | None:
    """The case-insensitive LIKE pattern (backslash escapes) of a code filter: a glob, whole
    code, when it has `*` or `?` (`fx.*`), else a substring (`gap` matches `fx.gap`)."""
    text = (text or "").strip()
    if not text:
        return None
    if len(text) > MAX_CODE_FILTER:
        message = f"at most {MAX_CODE_FILTER} characters, as a metric code"
        raise ValidationError([FieldError("code", message)])
    pattern = text.translate(_GLOB)
    return pattern if any(c in text for c in "*?") else f"%{pattern}%"


def columns(runs: int | None, days: int | None) -> int:
    """The runs a row holds at most: the N asked, else 25 (checking the days asked too)."""
    problems = []
    if runs is not None and runs not in RUN_CHOICES:
        problems.append(FieldError("runs", f"must be one of {', '.join(map(str, RUN_CHOICES))}"))
    if days is not None and not 1 <= days <= MAX_DAYS:
        problems.append(FieldError("days", f"must be between 1 and {MAX_DAYS}"))
    if problems:
        raise ValidationError(problems)
    return DEFAULT_RUNS if runs is None else runs


def grid_query(request: HistoryRequest, now: datetime) -> GridQuery:
    """What the repository reads for this request: one row past the page, to know of a next."""
    return GridQuery(
        runs=columns(request.runs, request.days),
        metrics=METRICS_PER_PAGE + 1,
        code_like=code_pattern(request.code),
        since=now - timedelta(days=request.days) if request.days is not None else None,
        newest_status=request.status,
        failing_only=request.failing_only,
        after_code=decode_key_cursor(request.cursor) if request.cursor else None,
    )


def history_page(rows: list[GridRow], query: GridQuery, now: datetime) -> RunHistory:
    page = rows[:METRICS_PER_PAGE]
    more = len(rows) > METRICS_PER_PAGE
    return RunHistory(
        rows=page,
        runs=query.runs,
        since=query.since,
        generated_at=now,
        next_cursor=encode_key_cursor(page[-1].code) if more else None,
    )
