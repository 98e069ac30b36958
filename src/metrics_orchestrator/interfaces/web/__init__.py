"""The web dashboard (SPEC §6.3): server-rendered pages over the application services.

`mount_dashboard(app)` adds the pages at `/` and `/ui/...`, the vendored assets at
`/ui/static` (the icon also at `/favicon.ico`), and a Swagger UI at `/docs` that loads its
assets from there (no CDN).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from metrics_orchestrator.interfaces.web import (
    pages_catalog,
    pages_events,
    pages_history,
    pages_incidents,
    pages_runs,
    pages_search,
)
from metrics_orchestrator.interfaces.web.deps import api_token
from metrics_orchestrator.interfaces.web.rendering import (
    STATIC_DIR,
    STATIC_URL,
    render_error,
    templates,
)
from metrics_orchestrator.interfaces.web.security import DashboardRefusal

SWAGGER = f"{STATIC_URL}/vendor/swagger-ui"


def mount_dashboard(app: FastAPI) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_DIR)), name="dashboard-static")
    for module in (
        pages_runs,
        pages_history,
        pages_catalog,
        pages_events,
        pages_search,
        pages_incidents,
    ):
        app.include_router(module.router)

    @app.exception_handler(DashboardRefusal)
    async def refused(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, DashboardRefusal)
        return render_error(request, exc.status_code, exc.message, api_token(request))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # Browsers ask for /favicon.ico whatever the page says; answer with the page's icon
        # (an SVG) instead of a 404 in every first page load's log.
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # FastAPI's own page starts Swagger UI with an inline script, which the
        # Content-Security-Policy refuses; this one starts it from static/docs.js.
        context = {
            "title": f"{app.title} - API docs",
            "openapi_url": app.openapi_url or "/openapi.json",
            "swagger": SWAGGER,
            "static": STATIC_URL,
        }
        return templates.TemplateResponse(request, "docs.html", context)
