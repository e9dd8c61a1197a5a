"""The platform's own routes: health, readiness, metrics and the language switcher."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from bauhinia.core import i18n
from bauhinia.core.database import SessionDep
from bauhinia.core.errors import problem_response
from bauhinia.core.web import safe_next

router = APIRouter()


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    keys: str


@router.get("/healthz", response_model=Health, tags=["operations"], summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    tags=["operations"],
    summary="The database is reachable and the keys are loaded",
    responses={503: {"description": "Not ready", "content": {"application/problem+json": {}}}},
)
async def readyz(request: Request, db: SessionDep) -> Response | Readiness:
    try:
        await db.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready", never a 500
        return problem_response(503, "Service Unavailable", f"database unreachable: {type(exc).__name__}")
    if not request.app.state.keyring.master:
        return problem_response(503, "Service Unavailable", "keys not loaded")
    return Readiness(status="ready", database="ok", keys="ok")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/language/{language}", include_in_schema=False)
async def switch_language(request: Request, language: str, next: str = "/") -> RedirectResponse:
    """Remember a language choice. A GET link, so the switcher works without JavaScript or a form."""
    response = RedirectResponse(safe_next(next), status_code=303)
    chosen = i18n.normalise(language)
    if chosen in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANGUAGE_COOKIE,
            chosen,
            max_age=365 * 24 * 3600,
            httponly=True,
            secure=request.app.state.settings.secure_transport,
            samesite="lax",
            path="/",
        )
    return response
