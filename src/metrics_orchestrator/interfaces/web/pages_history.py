"""History at a glance: a row per metric, a cell per run, coloured by outcome (docs/ui.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from metrics_orchestrator.application.run_history import RUN_CHOICES, HistoryRequest
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.model import RunStatus
from metrics_orchestrator.interfaces.web.deps import ApiToken, Queries
from metrics_orchestrator.interfaces.web.history import (
    CELL_CLASSES,
    LEGEND,
    STATUS_LABELS,
    grid_lines,
    grid_width,
)
from metrics_orchestrator.interfaces.web.rendering import render, render_error

router = APIRouter(include_in_schema=False)

DAY_CHOICES = (1, 7, 30)
_FIELDS = ("code", "status", "failing", "runs", "days")


@dataclass(frozen=True, slots=True)
class HistoryForm:
    """The filters as typed, to fill the form again and carry them to the next page."""

    code: str = ""
    status: str = ""
    failing: str = ""
    runs: str = ""
    days: str = ""


@router.get("/ui/history", response_class=HTMLResponse)
def history_page(request: Request, queries: Queries, token: ApiToken) -> HTMLResponse:
    form = HistoryForm(**{name: request.query_params.get(name, "").strip() for name in _FIELDS})
    try:
        history = queries.run_history(_history_request(form, request))
    except ValidationError as exc:
        return render_error(request, 422, str(exc), token)
    query = {name: value for name, value in asdict(form).items() if value}
    days = int(form.days) if form.days else None
    context = {
        "title": "History",
        "form": form,
        "history": history,
        "lines": grid_lines(history),
        "width": grid_width(history),
        "statuses": list(RunStatus),
        "status_labels": STATUS_LABELS,
        "legend": [(STATUS_LABELS[s.value], CELL_CLASSES[s.value]) for s in LEGEND],
        "run_choices": RUN_CHOICES,
        "day_choices": sorted({*DAY_CHOICES, days}) if days else DAY_CHOICES,
        "days": days,
        "filtered": bool(form.code or form.status or form.failing),
        "next_url": f"/ui/history?{urlencode({**query, 'cursor': history.next_cursor})}"
        if history.next_cursor
        else None,
    }
    return render(request, "history.html", context, token=token, active="/ui/history")


def _history_request(form: HistoryForm, request: Request) -> HistoryRequest:
    """The request the query service checks; what cannot even be parsed is refused here, with
    the same ValidationError (and so the same 422 page)."""
    return HistoryRequest(
        code=form.code or None,
        status=_status(form.status),
        failing_only=form.failing == "yes",
        runs=_whole_number("runs", form.runs),
        days=_whole_number("days", form.days),
        cursor=request.query_params.get("cursor") or None,
    )


def _status(text: str) -> RunStatus | None:
    if not text:
        return None
    try:
        return RunStatus(text)
    except ValueError:
        raise _invalid("status", f"unknown run status {text!r}") from None


def _whole_number(name: str, text: str) -> int | None:
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 4:
        raise _invalid(name, f"{text!r} is not a whole number of at most 4 digits")
    return int(text)


def _invalid(name: str, message: str) -> ValidationError:
    return ValidationError([FieldError(name, message)])
