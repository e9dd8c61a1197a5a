"""The counter: officers sign in strongly, verify residents' identity in person, and help locked-out residents."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bauhinia.core.database import SessionDep
from bauhinia.core.i18n import N_
from bauhinia.core.sessions import SessionKind, mutate_state
from bauhinia.core.web import redirect, verify_csrf
from bauhinia.identity.service import (
    VERIFICATION_CHANNELS,
    VERIFICATION_DOCUMENTS,
    IdentityError,
    Officer,
    client_address,
    identity_service,
    session_manager,
)
from bauhinia.identity.views import clean_text, options_in, render, text_field, translated

router = APIRouter(prefix="/staff", dependencies=[Depends(verify_csrf)], include_in_schema=False)

CHANNEL_LABELS = {"counter": N_("At a service counter"), "kiosk": N_("At a self-service kiosk with an officer")}
DOCUMENT_LABELS = {
    "hkid-card": N_("Hong Kong Identity Card"),
    "hkid-card-and-birth-certificate": N_("Identity card, with birth certificate for a minor"),
}


def _id(resident_id: str) -> str:
    """A resident id from the path, bounded and safe to look up."""
    return clean_text(resident_id[:36])


@router.get("/signin")
async def staff_sign_in_form(request: Request) -> HTMLResponse:
    return await render(request, "staff/signin.html", errors={}, username="")


@router.post("/signin")
async def staff_sign_in(request: Request, db: SessionDep) -> Response:
    form = await request.form()
    username = text_field(form, "username")[:64]
    password, code = text_field(form, "password")[:1024], text_field(form, "code")[:16]
    if not (username and password and code):
        return await render(
            request,
            "staff/signin.html",
            400,
            username=username,
            errors={"username": N_("Enter your username, password and the code from your authenticator app.")},
        )
    try:
        staff = await identity_service(request).staff_sign_in(
            db, username, password, code, client=client_address(request)
        )
    except IdentityError as error:
        return await render(
            request, "staff/signin.html", 400, username=username, errors={"username": translated(request, error)}
        )
    manager = session_manager(request)
    await manager.start(
        request,
        db,
        SessionKind.STAFF,
        principal_id=staff.id,
        replacing=await manager.load(request, db, SessionKind.STAFF),
    )
    await db.commit()
    return redirect("/staff")


@router.post("/signout")
async def staff_sign_out(request: Request, db: SessionDep) -> RedirectResponse:
    manager = session_manager(request)
    row = await manager.load(request, db, SessionKind.STAFF)
    if row is not None:
        await manager.end(request, db, row)
        await db.commit()
    return redirect("/staff/signin")


@router.get("")
async def staff_home(request: Request, db: SessionDep, staff: Officer, q: str = "") -> Response:
    query = clean_text(q.strip()[:254])
    if query:
        found = await identity_service(request).find_resident(db, query)
        if found is not None:
            return redirect(f"/staff/residents/{found.id}")
    return await render(request, "staff/home.html", staff=staff, query=query, searched=bool(query))


# Actions answer with a redirect to the resident's page (post/redirect/get), so reloading
# the page never repeats an action; the page names what was done.
NOTICES = {
    "verified": N_("Identity verified."),
    "unlocked": N_("Sign-in is unlocked."),
    "reset-code": N_("Give the resident this reset code."),
}


@router.get("/residents/{resident_id}")
async def resident_page(
    request: Request, resident_id: str, db: SessionDep, staff: Officer, notice: str = ""
) -> Response:
    code = ""
    if notice == "reset-code":
        # Shown once: the code lives in the officer's session until this page takes it.
        row = await session_manager(request).load(request, db, SessionKind.STAFF)
        taken = await session_manager(request).take(db, row, "fresh_reset_code") if row else None
        code = taken if isinstance(taken, str) else ""
        if not code:
            notice = ""
    return await _resident_page(
        request, db, staff, _id(resident_id), errors={}, notice=NOTICES.get(notice, ""), reset_code=code
    )


async def _resident_page(
    request: Request,
    db: SessionDep,
    staff: Officer,
    resident_id: str,
    *,
    errors: dict[str, str],
    notice: str,
    reset_code: str = "",
    status: int = 200,
) -> Response:
    overview = await identity_service(request).resident_overview(db, resident_id)
    if overview is None:
        return await render(request, "error.html", 404, status=404)
    return await render(
        request,
        "staff/resident.html",
        status,
        staff=staff,
        errors=errors,
        notice=notice,
        reset_code=reset_code,
        channels=options_in(request, tuple((c, CHANNEL_LABELS[c]) for c in VERIFICATION_CHANNELS)),
        documents=options_in(request, tuple((d, DOCUMENT_LABELS[d]) for d in VERIFICATION_DOCUMENTS)),
        **overview,
    )


@router.post("/residents/{resident_id}/verify")
async def verify_identity(request: Request, resident_id: str, db: SessionDep, staff: Officer) -> Response:
    form = await request.form()
    try:
        await identity_service(request).verify_identity(
            db,
            staff,
            _id(resident_id),
            id_number=text_field(form, "id_number")[:32],
            channel=text_field(form, "channel"),
            document=text_field(form, "document"),
            location=text_field(form, "location")[:200],
        )
    except IdentityError as error:
        return await _resident_page(
            request,
            db,
            staff,
            _id(resident_id),
            errors={error.field or "channel": translated(request, error)},
            notice="",
            status=400,
        )
    return redirect(f"/staff/residents/{_id(resident_id)}?notice=verified")


@router.post("/residents/{resident_id}/unlock")
async def unlock(request: Request, resident_id: str, db: SessionDep, staff: Officer) -> Response:
    try:
        await identity_service(request).unlock(db, staff, _id(resident_id))
    except IdentityError:
        return await render(request, "error.html", 404, status=404)
    return redirect(f"/staff/residents/{_id(resident_id)}?notice=unlocked")


@router.post("/residents/{resident_id}/reset-code")
async def reset_code(request: Request, resident_id: str, db: SessionDep, staff: Officer) -> Response:
    try:
        code = await identity_service(request).issue_reset_code(db, staff, _id(resident_id))
    except IdentityError:
        return await render(request, "error.html", 404, status=404)
    row = await session_manager(request).load(request, db, SessionKind.STAFF)
    assert row is not None  # the Officer guard found this session
    mutate_state(row, fresh_reset_code=code)
    await db.commit()
    return redirect(f"/staff/residents/{_id(resident_id)}?notice=reset-code")
