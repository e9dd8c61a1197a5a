"""The provider's pages: the authorization endpoint, sign-in and step-up, consent, logout,
and the resident's list of services they share details with."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core import i18n
from bauhinia.core.database import SessionDep, utcnow
from bauhinia.core.sessions import SessionKind, WebSession
from bauhinia.core.web import language_of, redirect, templates_of, verify_csrf
from bauhinia.identity.service import AccountHolder, SetupRequired, session_manager
from bauhinia.oidc import authorization
from bauhinia.oidc import claims as claim_rules
from bauhinia.oidc.api import oauth_form
from bauhinia.oidc.authorization import REQUEST_URI_PREFIX, AuthorizeError, ValidRequest
from bauhinia.oidc.clients import Client
from bauhinia.oidc.errors import OAuthError
from bauhinia.oidc.models import AuthorizationRequest
from bauhinia.oidc.service import OidcService, oidc_service

# The authorization endpoint receives cross-site navigations and form posts by design: no CSRF check.
endpoint_router = APIRouter(include_in_schema=False)
router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)


async def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return await templates_of(request).render(request, name, context, status_code=status_code)


async def error_page(request: Request, error: str, description: str, status_code: int = 400) -> HTMLResponse:
    return await render(request, "oidc/error.html", status_code, error=error, description=description)


# --- the authorization endpoint ---------------------------------------------------------------------


@endpoint_router.api_route("/oidc/authorize", methods=["GET", "POST"])
async def authorize(request: Request, db: SessionDep) -> Response:
    service = oidc_service(request)
    try:
        source = _single_query(request) if request.method == "GET" else await _form_or_error(request)
        valid, client = await _validated_request(db, service, authorization.plain_parameters(source))
        row = await service.store_request(db, valid, pushed=False)
        await db.commit()
    except AuthorizeError as exc:
        await db.rollback()
        if exc.redirect_uri is None:
            return await error_page(request, exc.error, exc.description)
        return redirect(exc.location(service.issuer))
    if "none" in valid.prompt:
        return await _continue(request, db, service, row, client)
    return _honour_ui_locales(request, redirect(f"/oidc/interaction/{row.id}"), valid.ui_locales)


def _honour_ui_locales(request: Request, response: Response, ui_locales: str | None) -> Response:
    """OIDC Core §3.1.2.1 ``ui_locales``: the service's preferred languages choose the pages' language for
    this browser session, unless the resident already chose one (their choice wins)."""
    chosen = i18n.from_accept_language(",".join((ui_locales or "").split()))
    if chosen and not request.cookies.get(i18n.LANGUAGE_COOKIE):
        secure = request.app.state.settings.secure_transport
        response.set_cookie(i18n.LANGUAGE_COOKIE, chosen, httponly=True, secure=secure, samesite="lax", path="/")
    return response


def _single_query(request: Request) -> dict[str, str]:
    """The query's parameters. A repeated one is refused (RFC 6749 §3.1, §4.1.2.1) as the form body's are:
    which copy counts is what parameter-pollution attacks play with, so no copy is trusted, nor redirected to."""
    items = request.query_params.multi_items()
    if len({name for name, _ in items}) != len(items):
        raise AuthorizeError("invalid_request", "a parameter is repeated")
    return dict(items)


async def _form_or_error(request: Request) -> dict[str, str]:
    try:
        return await oauth_form(request)
    except OAuthError as exc:
        raise AuthorizeError(exc.error, exc.description) from exc


async def _validated_request(
    db: AsyncSession, service: OidcService, params: dict[str, str]
) -> tuple[ValidRequest, Client]:
    client = await authorization.resolve_client(service.clients, db, params.get("client_id"))
    request_uri = params.get("request_uri")
    if request_uri is not None:
        # Only the parameters pushed by the client count (RFC 9126 §4); the rest of the query is ignored.
        request_id = request_uri.removeprefix(REQUEST_URI_PREFIX)
        pushed = None
        if request_uri.startswith(REQUEST_URI_PREFIX):
            pushed = await service.take_pushed_request(db, client.client_id, request_id)
        if pushed is None:
            raise AuthorizeError("invalid_request_uri", "request_uri is unknown, expired, used or another client's")
        return pushed, client
    if "request" in params:
        params = await authorization.request_object_parameters(
            service.clients, client, params["request"], service.issuer
        )
        params.setdefault("client_id", client.client_id)
    valid = authorization.validate(client, params, pushed=False)
    if client.metadata.require_pushed_authorization_requests:
        raise AuthorizeError(
            "invalid_request",
            "this client must use pushed authorization requests",
            redirect_uri=valid.redirect_uri,
            state=valid.state,
        )
    return valid, client


# --- sign-in, step-up and consent ---------------------------------------------------------------------


@router.get("/oidc/interaction/{interaction_id}")
async def interaction(request: Request, db: SessionDep, interaction_id: str) -> Response:
    service = oidc_service(request)
    found = await service.interaction(db, interaction_id)
    if found is None:
        return await _expired(request)
    return await _continue(request, db, service, *found)


async def _expired(request: Request) -> HTMLResponse:
    return await render(request, "oidc/expired.html", 400)


async def _continue(
    request: Request, db: AsyncSession, service: OidcService, row: AuthorizationRequest, client: Client
) -> Response:
    """Decide what the resident must do next: sign in (again, or more strongly), consent, or nothing."""
    valid = ValidRequest.from_parameters(row.parameters)
    fail = _failure(service, valid)
    session = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    here = f"/oidc/interaction/{row.id}"
    silent = "none" in valid.prompt
    if session is None or session.principal_id is None:
        return fail("login_required", "the resident is not signed in") if silent else _sign_in(here)
    profile = await service.identity.profile(db, session.principal_id)
    if profile is None:
        return fail("login_required", "the resident is not signed in") if silent else _sign_in(here)
    if not profile.has_strong_authenticator:
        raise SetupRequired
    amr = list(session.state.get("amr", []))
    if _needs_fresh_sign_in(valid, row, session):
        return fail("login_required", "a fresh sign-in is required") if silent else _sign_in(here, again=True)
    required = valid.required_acr(client)
    achieved = claim_rules.achieved_acr(profile, amr)
    if not claim_rules.satisfies(achieved, required):
        if required == "verified" and profile.assurance_level == "verified" and not silent:
            return _sign_in(here, again=True)  # step-up: a multi-factor sign-in gives "verified"
        if silent and profile.assurance_level == "verified":
            return fail("interaction_required", "a stronger sign-in is required")
        if silent:  # no sign-in can help: the identity must first be checked at a counter
            return fail("unmet_authentication_requirements", f"the service requires acr {required}")
        return await render(
            request,
            "oidc/unmet.html",
            403,
            client_name=client.metadata.client_name.in_language(language_of(request)),
            back=_error_location(
                service, valid, "unmet_authentication_requirements", f"the service requires acr {required}"
            ),
        )
    items = valid.items(client)
    remembered = await service.remembered(db, profile.resident_id, client.client_id)
    decided = set(remembered.approved) | set(remembered.declined) if remembered else set()
    if items and ("consent" in valid.prompt or not set(items) <= decided):
        if silent:
            return fail("consent_required", "the resident has not consented")
        return await _consent_page(request, client, row, items, remembered.approved if remembered else items)
    approved = [i for i in items if remembered and i in remembered.approved]
    return await _authorized(request, db, service, row, valid, session, approved, achieved)


def _needs_fresh_sign_in(valid: ValidRequest, row: AuthorizationRequest, session: WebSession) -> bool:
    """prompt=login and max_age (OIDC Core §3.1.2.1). A sign-in after the request began satisfies both:
    the session row is replaced at every sign-in, so its creation time says when the last one happened."""
    if session.created_at > row.created_at:
        return False
    if "login" in valid.prompt:
        return True
    auth_time = int(session.state.get("auth_time", 0))
    return valid.max_age is not None and time.time() - auth_time > valid.max_age


def _sign_in(next_path: str, *, again: bool = False) -> RedirectResponse:
    query = {"next": next_path, **({"reauth": "1"} if again else {})}
    return redirect(f"/signin?{urlencode(query)}")


def _error_location(service: OidcService, valid: ValidRequest, error: str, description: str) -> str:
    exc = AuthorizeError(error, description, redirect_uri=valid.redirect_uri, state=valid.state)
    return exc.location(service.issuer)


def _failure(service: OidcService, valid: ValidRequest) -> Callable[[str, str], RedirectResponse]:
    def fail(error: str, description: str) -> RedirectResponse:
        return redirect(_error_location(service, valid, error, description))

    return fail


async def _consent_page(
    request: Request, client: Client, row: AuthorizationRequest, items: list[str], checked: list[str]
) -> HTMLResponse:
    language = language_of(request)
    metadata = client.metadata
    return await render(
        request,
        "oidc/consent.html",
        client_name=metadata.client_name.in_language(language),
        department=metadata.department.in_language(language) if metadata.department else "",
        purpose=metadata.purpose.in_language(language) if metadata.purpose else "",
        items=[(name, claim_rules.ITEMS[name].label) for name in items],
        checked=set(checked),
        action=f"/oidc/interaction/{row.id}/consent",
    )


@router.post("/oidc/interaction/{interaction_id}/consent")
async def consent(request: Request, db: SessionDep, interaction_id: str, resident: AccountHolder) -> Response:
    service = oidc_service(request)
    found = await service.interaction(db, interaction_id)
    if found is None:
        return await _expired(request)
    row, client = found
    valid = ValidRequest.from_parameters(row.parameters)
    form = await request.form()
    if form.get("decision") != "approve":
        row.used_at = utcnow()
        await db.commit()
        return _failure(service, valid)("access_denied", "the resident declined")
    items = valid.items(client)
    approved = [i for i in items if i in set(form.getlist("item"))]
    if form.get("remember") == "yes":
        declined = [i for i in items if i not in approved]
        await service.remember(db, resident.id, client.client_id, approved, declined)
    session = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    profile = await service.identity.profile(db, resident.id)
    if session is None or profile is None:
        return _sign_in(f"/oidc/interaction/{row.id}")
    achieved = claim_rules.achieved_acr(profile, session.state.get("amr", []))
    required = valid.required_acr(client)
    if not claim_rules.satisfies(achieved, required):
        return redirect(f"/oidc/interaction/{row.id}")  # the checks run again, never a weaker sign-in
    return await _authorized(request, db, service, row, valid, session, approved, achieved)


async def _authorized(
    request: Request,
    db: AsyncSession,
    service: OidcService,
    row: AuthorizationRequest,
    valid: ValidRequest,
    session: WebSession,
    approved: list[str],
    acr: str,
) -> RedirectResponse:
    manager = session_manager(request)
    sid = session.state.get("sid")
    if not isinstance(sid, str):
        sid = secrets.token_urlsafe(24)
        await manager.write_state(db, session, sid=sid)
    assert session.principal_id is not None
    code = await service.issue_code(
        db,
        valid,
        resident_id=session.principal_id,
        items=approved,
        acr=acr,
        amr=list(session.state.get("amr", [])),
        auth_time=int(session.state.get("auth_time", 0)),
        sid=sid,
    )
    row.used_at = utcnow()
    await db.commit()
    return redirect(authorization.authorization_response(valid.redirect_uri, code, valid.state, service.issuer))


# --- logout ---------------------------------------------------------------------------------------


@endpoint_router.api_route("/oidc/logout", methods=["GET", "POST"])
async def logout(request: Request, db: SessionDep) -> Response:
    """OpenID Connect RP-Initiated Logout 1.0: redirect only to a URI registered by the identified client."""
    service = oidc_service(request)
    try:
        source = dict(request.query_params) if request.method == "GET" else await oauth_form(request)
    except OAuthError as exc:
        return await error_page(request, exc.error, exc.description)
    hint_claims = await service.id_token_hint(db, source["id_token_hint"]) if source.get("id_token_hint") else None
    if source.get("id_token_hint") and hint_claims is None:
        return await error_page(request, "invalid_request", "id_token_hint was not issued by this provider")
    client_id = source.get("client_id") or (hint_claims or {}).get("aud")
    if hint_claims and source.get("client_id") and hint_claims.get("aud") != source["client_id"]:
        return await error_page(request, "invalid_request", "client_id differs from the id_token_hint's audience")
    target = source.get("post_logout_redirect_uri")
    client = await service.clients.get(db, client_id) if isinstance(client_id, str) else None
    # A disabled client's URIs are no longer trusted destinations (it may be disabled for being compromised).
    if target is not None and (
        client is None or client.disabled or target not in client.metadata.post_logout_redirect_uris
    ):
        return await error_page(
            request, "invalid_request", "post_logout_redirect_uri is not registered for this client"
        )
    back = _logout_target(target, source.get("state"))
    session = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    if session is None or session.principal_id is None:
        return redirect(back) if back else await render(request, "oidc/signed_out.html")
    if hint_claims is not None and hint_claims.get("sid") == session.state.get("sid"):
        await end_session(request, db, session)
        return redirect(back) if back else await render(request, "oidc/signed_out.html")
    name = client.metadata.client_name.in_language(language_of(request)) if client else ""
    return await render(request, "oidc/logout.html", client_name=name, back=back or "")


def _logout_target(uri: str | None, state: str | None) -> str | None:
    if uri is None:
        return None
    return f"{uri}{'&' if '?' in uri else '?'}state={quote(state, safe='')}" if state else uri


@router.post("/oidc/logout/confirm")
async def confirm_logout(request: Request, db: SessionDep) -> Response:
    form = await request.form()
    back = form.get("back")
    session = await session_manager(request).load(request, db, SessionKind.RESIDENT)
    if session is not None and session.principal_id is not None:
        await end_session(request, db, session)
    # ``back`` was built by us from a registered URI; a forged one is refused rather than followed.
    service = oidc_service(request)
    if isinstance(back, str) and back and await _is_registered_logout_target(db, service, back):
        return redirect(back)
    return await render(request, "oidc/signed_out.html")


async def _is_registered_logout_target(db: AsyncSession, service: OidcService, uri: str) -> bool:
    """Whether ``uri`` is what _logout_target builds: a registered URI, or one with ``state`` added by its
    own separator and percent-encoded. Anything else after a registered URI could move the authority
    (``https://rp.example&state=@evil.example/`` has the host evil.example), so it is refused."""
    for client in await service.clients.all(db):
        if client.disabled:
            continue
        for registered in client.metadata.post_logout_redirect_uris:
            prefix = f"{registered}{'&' if '?' in registered else '?'}state="
            if uri == registered or (uri.startswith(prefix) and _STATE_ENCODED.fullmatch(uri[len(prefix) :])):
                return True
    return False


_STATE_ENCODED = re.compile(r"[A-Za-z0-9_.~%-]*")  # what quote(state, safe="") produces


async def end_session(request: Request, db: AsyncSession, session: WebSession) -> None:
    """End the resident's browser session and tell every client that holds it (back-channel, through the
    outbox: the logout tokens are committed with the session's end)."""
    await sign_out_hook(request, db, session)
    await session_manager(request).end(request, db, session)
    await db.commit()


# --- the resident's connected services ----------------------------------------------------------------


@router.get("/account/services")
async def connected_services(
    request: Request, db: SessionDep, resident: AccountHolder, notice: str = ""
) -> HTMLResponse:
    service = oidc_service(request)
    language = language_of(request)
    consents = [
        {
            "client_id": c.client.client_id,
            "name": c.client.metadata.client_name.in_language(language),
            "department": c.client.metadata.department.in_language(language) if c.client.metadata.department else "",
            "approved": [claim_rules.ITEMS[i].label for i in c.approved if i in claim_rules.ITEMS],
            "declined": [claim_rules.ITEMS[i].label for i in c.declined if i in claim_rules.ITEMS],
            "granted_at": c.granted_at,
        }
        for c in await service.consents(db, resident.id)
    ]
    return await render(request, "oidc/services.html", consents=consents, notice=notice)


@router.post("/account/services/{client_id}/withdraw")
async def withdraw(request: Request, db: SessionDep, client_id: str, resident: AccountHolder) -> RedirectResponse:
    withdrawn = await oidc_service(request).withdraw(db, resident.id, client_id)
    await db.commit()
    return redirect("/account/services?notice=" + ("withdrawn" if withdrawn else "unchanged"))


async def sign_out_hook(request: Request, db: AsyncSession, session: WebSession) -> None:
    """Called by the sign-out page in its transaction: revoke the session's grants and put the logout
    tokens in the outbox (sent once the transaction commits)."""
    assert session.principal_id is not None
    await oidc_service(request).end_resident_session(db, session.principal_id, session.state.get("sid"))
