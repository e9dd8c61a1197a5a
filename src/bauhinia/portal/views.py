"""The portal's start page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bauhinia.core.web import templates_of
from bauhinia.identity.service import OptionalResident

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, resident: OptionalResident, signed_out: str = "") -> HTMLResponse:
    return await templates_of(request).render(
        request, "portal/home.html", {"resident": resident, "signed_out": signed_out == "1"}
    )
