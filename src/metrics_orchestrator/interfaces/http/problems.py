"""RFC 9457 problem details: every error the API returns, in one shape.

Domain errors map to statuses here and nowhere else: NotFound 404, Conflict and
IllegalTransition 409, ValidationError 422 (with every field error and its JSON path).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import OperationalError
from psycopg.errors import ReadOnlySqlTransaction
from starlette.exceptions import HTTPException as StarletteHTTPException

from metrics_orchestrator.application.ports import TransientDatabaseError
from metrics_orchestrator.domain.errors import (
    Conflict,
    FieldError,
    IllegalTransition,
    NotFound,
    ValidationError,
)
from metrics_orchestrator.domain.log_events import ON_HTTP_ERROR
from metrics_orchestrator.interfaces.http.models import Problem

log = structlog.get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:metrics-orchestrator:problem:"


class ApiProblem(Exception):
    """An error raised by the HTTP layer itself, already in problem form."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers
        self.extensions = extensions


def problem_response(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    problem = Problem(
        type=f"{TYPE_PREFIX}{kind}" if kind else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=instance,
        **extensions,
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def field_errors_json(errors: Iterable[FieldError]) -> list[dict[str, str]]:
    return [{"path": e.path, "message": e.message} for e in errors]


def validation_problem(errors: Sequence[FieldError], instance: str) -> JSONResponse:
    detail = "; ".join(str(e) for e in errors) or "invalid input"
    return problem_response(
        422,
        detail,
        kind="validation-error",
        instance=instance,
        errors=field_errors_json(errors),
    )


def request_field_errors(exc: RequestValidationError) -> list[FieldError]:
    """FastAPI/pydantic request errors as field errors with JSON paths (body prefix dropped)."""
    errors = []
    for error in exc.errors():
        location = list(error.get("loc", ()))
        where = location[0] if location else "body"
        path = json_path(location[1:])
        # a validator's own sentence, without pydantic's "Value error, " in front of it
        message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            reason = error.get("ctx", {}).get("error", "malformed")
            path, message = "", f"request body is not valid JSON ({reason})"
        elif error.get("type") == "missing" and not path:
            message = f"the request {where} is required"
        errors.append(FieldError(path, _lower_first(message)))
    return errors


def json_path(location: Sequence[Any]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _lower_first(message: str) -> str:
    return message[:1].lower() + message[1:]


def install_problem_handlers(app: FastAPI) -> None:
    """Every error becomes application/problem+json with a precise `detail`."""

    @app.exception_handler(ApiProblem)
    def api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            kind=exc.kind,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem_response(404, str(exc), kind="not-found", instance=request.url.path)

    @app.exception_handler(Conflict)
    def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return problem_response(409, str(exc), kind="conflict", instance=request.url.path)

    @app.exception_handler(IllegalTransition)
    def illegal_transition(request: Request, exc: IllegalTransition) -> JSONResponse:
        return problem_response(409, str(exc), kind="illegal-transition", instance=request.url.path)

    @app.exception_handler(ValidationError)
    def domain_validation(request: Request, exc: ValidationError) -> JSONResponse:
        return validation_problem(exc.errors, request.url.path)

    @app.exception_handler(RequestValidationError)
    def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(request_field_errors(exc), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
            # FastAPI answers 400 for a body it cannot decode (not UTF-8); it is as invalid
            # as malformed JSON, which it reports as 422: keep one status for both.
            error = FieldError("", f"request body is not valid UTF-8 JSON ({exc.__cause__})")
            return validation_problem([error], request.url.path)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}"
        return problem_response(
            exc.status_code, detail, instance=request.url.path, headers=exc.headers
        )

    def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(ON_HTTP_ERROR, message="database unavailable", error=str(exc))
        return problem_response(
            503,
            "the database is unavailable or overloaded; try again shortly",
            kind="database-unavailable",
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )

    # A read-only database (SQLSTATE 25006: a standby during a failover) cannot take the
    # write either; like an outage, it passes, so the client is told to try again.
    for unavailable_error in (OperationalError, TransientDatabaseError, ReadOnlySqlTransaction):
        app.add_exception_handler(unavailable_error, unavailable)

    @app.exception_handler(Exception)
    def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception(ON_HTTP_ERROR, message="unhandled error", path=request.url.path)
        return problem_response(
            500, "internal error; see the server log", instance=request.url.path
        )


_DESCRIPTIONS = {
    401: "Missing or invalid bearer token (only when the server has API_TOKEN set).",
    404: "Unknown resource.",
    409: "Conflicts with the current state (for example an illegal run transition).",
    413: "Request body too large.",
    422: "Invalid request; `errors` lists every problem with its JSON path.",
    502: "An upstream store (S3) could not be read.",
    503: "The database is unavailable, read-only or not migrated.",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for problem statuses (media type fixed in app.py)."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}
