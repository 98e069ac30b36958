"""Jinja2 rendering of dashboard pages, with what every page's layout needs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from metrics_orchestrator.interfaces.web.presenters import (
    STALE_HINTS,
    ago,
    data_age,
    dataset_href,
    duration,
    short_path,
    version_href,
    when,
)
from metrics_orchestrator.interfaces.web.security import forget_notice, is_signed_in, read_notice

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
STATIC_URL = "/ui/static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters["when"] = when
templates.env.filters["ago"] = ago
templates.env.filters["duration"] = duration
templates.env.filters["dataset_href"] = dataset_href
templates.env.filters["data_age"] = data_age
templates.env.filters["short_path"] = short_path
templates.env.globals["version_href"] = version_href
templates.env.globals["STALE_HINTS"] = STALE_HINTS


def _json_script(value: Any) -> Markup:
    """JSON safe inside <script type="application/json"> (no `</script>` break-out)."""
    text = json.dumps(value, default=str).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))


templates.env.filters["json_script"] = _json_script

# Texts a page shows in a list (a rejected body, a run's error) are cut to this; the whole is
# one click away (an event's page, a run's page), so a page stays small whatever the input.
EXCERPT_LENGTH = 500


def excerpt(text: str | None, limit: int = EXCERPT_LENGTH) -> str:
    """The start of `text`, with "…" when it was cut."""
    if text is None or len(text) <= limit:
        return text or ""
    return text[:limit] + "…"


templates.env.filters["excerpt"] = excerpt
templates.env.globals["EXCERPT_LENGTH"] = EXCERPT_LENGTH

NAV = (
    ("/", "Overview"),
    ("/ui/runs", "Runs"),
    ("/ui/history", "History"),
    ("/ui/metrics", "Metrics"),
    ("/ui/datasets", "Datasets"),
    ("/ui/graph", "Graph"),
    ("/ui/events", "Events"),
    ("/ui/incidents", "Incidents"),
)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    token: str | None,
    status_code: int = 200,
    active: str = "",
) -> HTMLResponse:
    page = {
        "request": request,
        "nav": NAV,
        "active": active,
        "static": STATIC_URL,
        "token_required": token is not None,
        "signed_in": is_signed_in(request, token),
        "notice": read_notice(request, token),
        "rendered_at": datetime.now(UTC),
        **context,
    }
    response = templates.TemplateResponse(request, template, page, status_code=status_code)
    forget_notice(request, response)
    return response


def render_error(
    request: Request, status_code: int, message: str, token: str | None
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"title": f"Error {status_code}", "message": message},
        token=token,
        status_code=status_code,
    )
