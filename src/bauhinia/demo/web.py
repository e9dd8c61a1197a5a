"""What the demo departments' modules share: the "not set up yet" answer, problem details, and the app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from bauhinia.demo.departments import Departments


class NotSetUp(Exception):
    """``bauhinia demo`` has not (yet) written what a department needs: its credentials or its records."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def departments_of(request: Request) -> Departments:
    from bauhinia.demo.departments import Departments

    app = request.scope["app"]
    assert isinstance(app, Departments)
    return app


def is_machine_path(path: str) -> bool:
    """Endpoints the gateway calls (data requests, webhooks) answer in JSON; everything else is a page."""
    return "/exchange/" in path


def problem(status: int, title: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """RFC 9457 problem details."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def not_set_up(request: Request, exc: NotSetUp) -> Response:
    detail = f"This demo department is not set up yet: run `bauhinia demo` first. {exc.what}"
    if is_machine_path(request.url.path):
        return problem(503, "Service Unavailable", detail)
    return departments_of(request).render(
        request, "error.html", 503, heading="This demo department is not set up yet", message=detail
    )
