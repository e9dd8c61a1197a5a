"""RFC 9457 problem details for every JSON error, and readable HTML error pages for people."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


class Problem(Exception):
    """An error a JSON API reports as problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.type, self.extensions = status, title, detail, type_, extensions
        self.headers = dict(headers or {})


def invalid_input(exc: ValidationError, detail: str) -> Problem:
    """A 422 problem listing each field Pydantic refused, with where it is and why."""
    errors = [{"location": [str(part) for part in e["loc"]], "message": e["msg"]} for e in exc.errors()]
    return Problem(422, "Unprocessable Content", detail, errors=errors)


def problem_response(
    status: int,
    title: str,
    detail: str = "",
    *,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def wants_html(request: Request) -> bool:
    """People's browsers get pages; API clients and everything under /api get problem details."""
    if request.url.path.startswith("/api/"):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept


STATUS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            type_=exc.type,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_html(request):
            return await render_error_page(request, exc.status_code)
        title = STATUS_TITLES.get(exc.status_code, "Error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else ""
        return problem_response(
            exc.status_code, title, detail, instance=request.url.path, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"location": [str(part) for part in err.get("loc", ())], "message": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        if wants_html(request):
            return await render_error_page(request, 400)
        return problem_response(
            422, "Unprocessable Content", "The request did not match the expected schema.", errors=errors
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.url.path)
        if wants_html(request):
            return await render_error_page(request, 500)
        return problem_response(500, "Internal Server Error", "An unexpected error occurred; it has been logged.")


async def render_error_page(request: Request, status: int) -> Response:
    from bauhinia.core.web import templates_of  # the web layer depends on errors, not the reverse

    return await templates_of(request).render(request, "error.html", {"status": status}, status_code=status)
