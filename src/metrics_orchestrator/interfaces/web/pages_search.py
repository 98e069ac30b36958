"""The header's search box (issue 25 "finding things"): one read, then go there or list."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metrics_orchestrator.interfaces.web.deps import ApiToken, Queries
from metrics_orchestrator.interfaces.web.rendering import render
from metrics_orchestrator.interfaces.web.search import search_outcome

router = APIRouter(include_in_schema=False)


@router.get("/ui/search", response_class=HTMLResponse)
def search(request: Request, queries: Queries, token: ApiToken) -> Response:
    """`?q=` a metric code, a dataset id, an event key or a run id prefix: a single match
    answers 303 to its page; several, or none, a page that lists them or says so."""
    outcome = search_outcome(queries.search(request.query_params.get("q", "")))
    if outcome.go_to is not None:
        return RedirectResponse(outcome.go_to, status_code=303)
    context = {"title": "Search", "outcome": outcome, "search_text": outcome.text}
    return render(request, "search.html", context, token=token)
