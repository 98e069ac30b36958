"""The served application: the HTTP API (interfaces/http) with the dashboard mounted on it.

The dashboard builds on the API's dependencies, guards and views, so it is the one that mounts
itself onto the API's app; the API knows nothing of the dashboard (the imports inside
`interfaces/` point one way: web → http, checked by tests/unit/test_architecture.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from metrics_orchestrator.bootstrap import Container
from metrics_orchestrator.interfaces.http.app import create_app
from metrics_orchestrator.interfaces.web import mount_dashboard


def create_app_with_dashboard(container: Container) -> FastAPI:
    app = create_app(container)
    # what only the dashboard reads (interfaces/web/deps.py); harmless if the API set them too
    app.state.incidents = container.incidents
    app.state.notifications = container.notifications
    mount_dashboard(app)
    return app
