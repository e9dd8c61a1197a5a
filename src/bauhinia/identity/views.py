"""Residents' pages: register, sign in, secure the account, manage sign-in methods, recover."""

from __future__ import annotations

import base64
import time
from typing import Any

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from bauhinia.core.database import SessionDep, utcnow
from bauhinia.core.errors import problem_response
from bauhinia.core.i18n import N_
from bauhinia.core.sessions import SessionKind, mutate_state
from bauhinia.core.web import language_of, redirect, safe_next, templates_of, translator_of, verify_csrf
from bauhinia.identity import passkeys, totp
from bauhinia.identity.schemas import FieldErrors, RegistrationInput, validate_registration
from bauhinia.identity.service import (
    SECOND_FACTOR_WINDOW,
    AccountHolder,
    AuthenticatorKind,
    IdentityError,
    SessionStarter,
    SignedInResident,
    SignInResult,
    client_address,
    has_strong_authenticator,
    identity_service,
    session_manager,
)

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

GENDER_OPTIONS = (("F", N_("Female")), ("M", N_("Male")), ("X", N_("X (unspecified)")))
RELATIONSHIP_OPTIONS = (("parent", N_("Parent")), ("guardian", N_("Legal guardian")))


def clean_text(value: str) -> str:
    """Text the database can hold: PostgreSQL refuses NUL characters (and no person types one)."""
    return value.replace("\x00", "\ufffd")


def text_field(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return clean_text(value) if isinstance(value, str) else ""


def translated(request: Request, error: IdentityError) -> str:
    return translator_of(request).gettext(error.message, **error.params)


def options_in(request: Request, options: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    translator = translator_of(request)
    return [(value, translator.gettext(label)) for value, label in options]


async def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return await templates_of(request).render(request, name, context, status_code=status_code)


# --- registration ---------------------------------------------------------------------------------


@router.get("/register")
async def register_form(request: Request) -> HTMLResponse:
    return await _registration_page(request, RegistrationInput(), {})


async def _registration_page(
    request: Request, values: RegistrationInput, errors: dict[str, str], status_code: int = 200
) -> HTMLResponse:
    return await render(
        request,
        "identity/register.html",
        status_code,
        values=values,
        errors=errors,
        genders=options_in(request, GENDER_OPTIONS),
        relationships=options_in(request, RELATIONSHIP_OPTIONS),
    )


@router.post("/register")
async def register(request: Request, db: SessionDep) -> Response:
    form = await request.form()
    values = RegistrationInput(**{name: text_field(form, name) for name in RegistrationInput.__dataclass_fields__})
    today = utcnow().date()
    checked = validate_registration(values, today)
    values.password = ""  # never echoed back into the page
    if isinstance(checked, FieldErrors):
        return await _registration_page(request, values, checked.errors, 400)
    try:
        resident = await identity_service(request).register(
            db, checked, language=language_of(request), client=client_address(request), today=today
        )
    except IdentityError as error:
        return await _registration_page(request, values, {error.field or "email": translated(request, error)}, 400)
    await _start_resident_session(request, db, resident.id, ["pwd"])
    return redirect("/account/setup")


# --- sign in --------------------------------------------------------------------------------------


def _signed_in_session(request: Request, db: SessionDep) -> SessionStarter:
    """For a sign-in to call in its transaction: rotate the browser session to a signed-in one."""

    async def start(result: SignInResult) -> None:
        manager = session_manager(request)
        await manager.start(
            request,
            db,
            SessionKind.RESIDENT,
            principal_id=result.resident_id,
            state={"amr": result.amr, "auth_time": int(time.time())},
            replacing=await manager.load(request, db, SessionKind.RESIDENT),
        )

    return start


async def _start_resident_session(request: Request, db: SessionDep, resident_id: str, amr: list[str]) -> None:
    """Rotate the browser session to a signed-in one and commit, with whatever the transaction holds."""
    await _signed_in_session(request, db)(SignInResult(resident_id, amr, False))
    await db.commit()


@router.get("/signin")
async def sign_in_form(request: Request, next: str = "/account", reauth: str = "") -> HTMLResponse:
    return await render(
        request, "identity/signin.html", next=safe_next(next, "/account"), errors={}, email="", reauth=reauth == "1"
    )


@router.post("/signin")
async def sign_in(request: Request, db: SessionDep) -> Response:
    form = await request.form()
    email, password = text_field(form, "email")[:254], text_field(form, "password")[:1024]
    next_path = safe_next(text_field(form, "next"), "/account")
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = N_("Enter your email address.")
    if not password:
        errors["password"] = N_("Enter your password.")
    if errors:
        return await render(request, "identity/signin.html", 400, next=next_path, errors=errors, email=email)
    signed_in = _signed_in_session(request, db)

    async def start_session(result: SignInResult) -> None:
        if not result.needs_second_factor:
            await signed_in(result)
            return
        manager = session_manager(request)
        await manager.start(
            request,
            db,
            SessionKind.RESIDENT,
            state={
                "pending_resident": result.resident_id,
                "pending_amr": result.amr,
                "pending_at": int(time.time()),
                "next": next_path,
            },
            replacing=await manager.load(request, db, SessionKind.RESIDENT),
        )

    try:
        result = await identity_service(request).sign_in_with_password(
            db, email, password, client=client_address(request), start_session=start_session
        )
    except IdentityError as error:
        return await render(
            request,
            "identity/signin.html",
            400,
            next=next_path,
            errors={"email": translated(request, error)},
            email=email,
        )
    return redirect("/signin/code" if result.needs_second_factor else next_path)


@router.get("/signin/code")
async def second_factor_form(request: Request, db: SessionDep) -> Response:
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    if row is None or not _pending_fresh(row.state):
        return redirect("/signin")
    return await render(request, "identity/signin_code.html", errors={})


def _pending_fresh(state: dict[str, Any]) -> bool:
    started = state.get("pending_at")
    return (
        isinstance(state.get("pending_resident"), str)
        and isinstance(started, int)
        and time.time() - started <= SECOND_FACTOR_WINDOW.total_seconds()
    )


@router.post("/signin/code")
async def second_factor(request: Request, db: SessionDep) -> Response:
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    if row is None or not _pending_fresh(row.state):
        return redirect("/signin")
    code = text_field(await request.form(), "code")
    if not code.strip():
        return await render(
            request,
            "identity/signin_code.html",
            400,
            errors={"code": N_("Enter the 6-digit code from your authenticator app.")},
        )
    state = dict(row.state)
    try:
        await identity_service(request).complete_second_factor(
            db,
            state["pending_resident"],
            code,
            client=client_address(request),
            start_session=_signed_in_session(request, db),
        )
    except IdentityError as error:
        return await render(request, "identity/signin_code.html", 400, errors={"code": translated(request, error)})
    return redirect(safe_next(state.get("next"), "/account"))


@router.post("/signin/passkey/options")
async def passkey_sign_in_options(request: Request, db: SessionDep) -> Response:
    options, challenge = passkeys.authentication_options(identity_service(request).rp)
    manager = session_manager(request)
    row = await manager.ensure(request, db, SessionKind.RESIDENT)
    await manager.write_state(db, row, passkey_signin_challenge=passkeys.challenge_to_text(challenge))
    await db.commit()
    return Response(options, media_type="application/json")


@router.post("/signin/passkey")
async def passkey_sign_in(request: Request, db: SessionDep) -> JSONResponse:
    manager = session_manager(request)
    row = await manager.load(request, db, SessionKind.RESIDENT)
    # The challenge is spent before the response is checked, under the session row's lock, in the
    # transaction that records the outcome: an assertion can never be replayed, and every path
    # below commits the spend.
    challenge_text = await manager.claim(db, row, "passkey_signin_challenge") if row else None
    if not isinstance(challenge_text, str):
        await db.commit()
        return _json_error(request, N_("Your sign-in has expired. Start again."), 400)
    next_path = safe_next(request.query_params.get("next"), "/account")
    try:
        response = passkeys.parse_json(await request.body())
        # The spend stays pending (no autoflush): a refusal's commit writes it, a success's rotation
        # rewrites the whole row instead, one UPDATE fewer.
        with db.no_autoflush:
            await identity_service(request).passkey_sign_in(
                db,
                response,
                passkeys.challenge_from_text(challenge_text),
                client=client_address(request),
                start_session=_signed_in_session(request, db),
            )
    except passkeys.PasskeyError as error:
        await db.commit()
        return _json_error(request, error.reason, 400)
    except IdentityError as error:
        await db.commit()
        return _json_error(request, error.message, 400, **error.params)
    return JSONResponse({"redirect": next_path})


def _json_error(request: Request, message: str, status: int, **params: object) -> JSONResponse:
    """Problem details (RFC 9457) whose detail is already in the resident's language."""
    return problem_response(
        status, "Bad Request", translator_of(request).gettext(message, **params), type_="urn:bauhinia:problem:passkey"
    )


@router.post("/signout")
async def sign_out(request: Request, db: SessionDep) -> RedirectResponse:
    manager = session_manager(request)
    row = await manager.load(request, db, SessionKind.RESIDENT)
    if row is not None:
        if row.principal_id:
            await identity_service(request).record_sign_out(db, row.principal_id)
            # Other domains end what hangs on the session (the OpenID provider's grants) in this transaction;
            # what they must tell others (logout tokens) goes to the outbox, committed with it.
            for hook in request.app.state.sign_out_hooks:
                await hook(request, db, row)
        await manager.end(request, db, row)
        await db.commit()
    return redirect("/?signed_out=1")


# --- the account ----------------------------------------------------------------------------------


@router.get("/account")
async def account(request: Request, resident: AccountHolder, notice: str = "") -> HTMLResponse:
    notices = {
        "totp-added": N_("Your authenticator app is set up."),
        "passkey-added": N_("Your passkey is set up."),
        "removed": N_("The sign-in method was removed."),
        "password-changed": N_("Your password was changed."),
    }
    return await render(
        request,
        "identity/account.html",
        resident=resident,
        notice=notices.get(notice, ""),
        errors={},
        kinds=AuthenticatorKind,
    )


@router.get("/account/setup")
async def account_setup(request: Request, resident: SignedInResident) -> Response:
    if has_strong_authenticator(resident):
        return redirect("/account")
    has_password = any(a.kind == AuthenticatorKind.PASSWORD for a in resident.authenticators)
    return await render(request, "identity/setup.html", resident=resident, has_password=has_password)


@router.get("/account/totp")
async def totp_form(request: Request, db: SessionDep, resident: SignedInResident) -> HTMLResponse:
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    assert row is not None
    secret = totp.new_secret()
    sealed = identity_service(request).keyring.seal(secret.encode(), f"totp-enrol:{row.id_hash}")
    mutate_state(row, totp_enrol=base64.b64encode(sealed).decode())
    await db.commit()
    return await _totp_page(request, resident.email, secret, {})


async def _totp_page(
    request: Request, email: str, secret: str, errors: dict[str, str], status: int = 200
) -> HTMLResponse:
    uri = totp.provisioning_uri(secret, email)
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return await render(request, "identity/totp.html", status, qr=qr, secret=grouped, errors=errors)


@router.post("/account/totp")
async def totp_confirm(request: Request, db: SessionDep, resident: SignedInResident) -> Response:
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    assert row is not None
    sealed = row.state.get("totp_enrol")
    if not isinstance(sealed, str):
        return redirect("/account/totp")
    service = identity_service(request)
    secret = service.keyring.open(base64.b64decode(sealed), f"totp-enrol:{row.id_hash}").decode()
    code = text_field(await request.form(), "code")
    try:
        codes = await service.add_totp(db, resident.id, secret, code)
    except IdentityError as error:
        return await _totp_page(request, resident.email, secret, {"code": translated(request, error)}, 400)
    mutate_state(row, totp_enrol=None, fresh_recovery_codes=codes)
    await db.commit()
    return redirect("/account/recovery-codes" if codes else "/account?notice=totp-added")


@router.post("/account/passkeys/options")
async def passkey_registration_options(request: Request, db: SessionDep, resident: SignedInResident) -> Response:
    options, challenge = identity_service(request).passkey_registration_options(resident)
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    assert row is not None
    mutate_state(row, passkey_register_challenge=passkeys.challenge_to_text(challenge))
    await db.commit()
    return Response(options, media_type="application/json")


@router.post("/account/passkeys")
async def passkey_register(request: Request, db: SessionDep, resident: SignedInResident) -> JSONResponse:
    manager = session_manager(request)
    row = await manager.load(request, db, SessionKind.RESIDENT)
    assert row is not None
    challenge_text = await manager.take(db, row, "passkey_register_challenge")
    if not isinstance(challenge_text, str):
        return _json_error(request, N_("Your passkey could not be registered. Try again."), 400)
    try:
        response = passkeys.parse_json(await request.body())
        label = clean_text(str(request.query_params.get("label", "")))
        codes = await identity_service(request).add_passkey(
            db, resident.id, response, passkeys.challenge_from_text(challenge_text), label
        )
    except passkeys.PasskeyError as error:
        return _json_error(request, error.reason, 400)
    except IdentityError as error:
        return _json_error(request, error.message, 400, **error.params)
    mutate_state(row, fresh_recovery_codes=codes)
    await db.commit()
    return JSONResponse({"redirect": "/account/recovery-codes" if codes else "/account?notice=passkey-added"})


@router.get("/account/recovery-codes")
async def recovery_codes(request: Request, db: SessionDep, resident: AccountHolder) -> Response:
    """Fresh codes are shown exactly once, then forgotten: only their hashes are kept."""
    manager = session_manager(request)
    row = await manager.load(request, db, SessionKind.RESIDENT)
    assert row is not None
    codes = await manager.take(db, row, "fresh_recovery_codes")
    if not isinstance(codes, list):
        return redirect("/account")
    return await render(request, "identity/recovery_codes.html", codes=codes)


@router.post("/account/recovery-codes")
async def regenerate_recovery_codes(request: Request, db: SessionDep, resident: AccountHolder) -> Response:
    codes = await identity_service(request).regenerate_recovery_codes(db, resident.id)
    row = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    assert row is not None
    mutate_state(row, fresh_recovery_codes=codes)
    await db.commit()
    return redirect("/account/recovery-codes")


@router.post("/account/authenticators/{authenticator_id}/remove")
async def remove_authenticator(
    request: Request, authenticator_id: str, db: SessionDep, resident: AccountHolder
) -> Response:
    try:
        await identity_service(request).remove_authenticator(db, resident.id, authenticator_id[:36])
    except IdentityError as error:
        # The service refuses before it changes anything. A rollback here would expire the loaded
        # resident, and reading resident.id afterwards would be IO outside the event loop.
        fresh = await identity_service(request).resident(db, resident.id)
        return await render(
            request,
            "identity/account.html",
            400,
            resident=fresh,
            notice="",
            errors={"authenticators": translated(request, error)},
            kinds=AuthenticatorKind,
        )
    return redirect("/account?notice=removed")


@router.get("/account/password")
async def password_form(request: Request, resident: SignedInResident) -> HTMLResponse:
    return await _password_page(request, resident, {})


async def _password_page(request: Request, resident: Any, errors: dict[str, str], status: int = 200) -> HTMLResponse:
    has_password = any(a.kind == AuthenticatorKind.PASSWORD for a in resident.authenticators)
    return await render(request, "identity/password.html", status, errors=errors, has_password=has_password)


@router.post("/account/password")
async def change_password(request: Request, db: SessionDep, resident: SignedInResident) -> Response:
    form = await request.form()
    has_password = any(a.kind == AuthenticatorKind.PASSWORD for a in resident.authenticators)
    current = text_field(form, "current_password")[:1024] if has_password else None
    new = text_field(form, "new_password")[:1024]
    try:
        await identity_service(request).change_password(db, resident.id, current, new, client=client_address(request))
    except IdentityError as error:
        return await _password_page(request, resident, {error.field or "new_password": translated(request, error)}, 400)
    return redirect("/account?notice=password-changed" if has_strong_authenticator(resident) else "/account/setup")


# --- assisted recovery ----------------------------------------------------------------------------


@router.get("/recover")
async def recover_form(request: Request) -> HTMLResponse:
    return await render(request, "identity/recover.html", errors={}, email="")


@router.post("/recover")
async def recover(request: Request, db: SessionDep) -> Response:
    form = await request.form()
    email, code = text_field(form, "email")[:254], text_field(form, "code")[:64]
    if not email.strip() or not code.strip():
        return await render(
            request,
            "identity/recover.html",
            400,
            email=email,
            errors={"email": N_("Enter your email address and the reset code the officer gave you.")},
        )
    try:
        resident_id = await identity_service(request).recover_with_reset_code(
            db, email, code, client=client_address(request)
        )
    except IdentityError as error:
        return await render(
            request, "identity/recover.html", 400, email=email, errors={"email": translated(request, error)}
        )
    await session_manager(request).end_all_for(db, SessionKind.RESIDENT, resident_id)
    await _start_resident_session(request, db, resident_id, ["pwd"])
    return redirect("/account/password")
