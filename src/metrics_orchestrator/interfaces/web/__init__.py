"""The web dashboard (SPEC §6.3): server-rendered pages over the application services.

`mount_dashboard(app)` adds the pages at `/` and `/ui/...`, the vendored assets at
`/ui/static` (the icon also at `/favicon.ico`), and a Swagger UI at `/docs` that loads its
assets from there (no CDN).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from metrics_orchestrator.interfaces.web import pages_catalog, pages_events, pages_runs
from metrics_orchestrator.interfaces.web.deps import api_token
from metrics_orchestrator.interfaces.web.rendering import STATIC_DIR, STATIC_URL, render_error
from metrics_orchestrator.interfaces.web.security import DashboardRefusal

SWAGGER = f"{STATIC_URL}/vendor/swagger-ui"


def mount_dashboard(app: FastAPI) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=str(STATIC_DIR)), name="dashboard-static")
    for module in (pages_runs, pages_catalog, pages_events):
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
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
        )
