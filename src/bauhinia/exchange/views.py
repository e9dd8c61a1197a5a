"""The gateway's pages for residents: the review of a consent request, their consents (pause, resume,
withdraw), and the history of every use of their data (docs/exchange-protocol.md §2–3, §6).

The pages only ever show names, items and outcomes: the gateway never holds a value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.core.database import SessionDep, utcnow
from bauhinia.core.web import language_of, redirect, templates_of, verify_csrf
from bauhinia.exchange.consents import ConsentRefused, ConsentView, HistoryEntry
from bauhinia.exchange.schemas import ConsentStatus
from bauhinia.exchange.service import exchange_service
from bauhinia.identity.service import AccountHolder

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

ACCOUNT_CONSENTS = "/account/consents"
# What each refusal of the consent desk means on a page, and the status the page is sent with.
REFUSALS = {404: "missing", 409: "decided", 422: "invalid"}
PAST = {"pause": "paused", "resume": "resumed", "revoke": "revoked"}
NOTICES = (*PAST.values(), "unchanged")
GROUPS = {
    ConsentStatus.ACTIVE: "active",
    ConsentStatus.PAUSED: "paused",
    ConsentStatus.REVOKED: "ended",
    ConsentStatus.EXPIRED: "ended",
    ConsentStatus.REJECTED: "ended",
}
HISTORY_LIMIT = 200
OUTCOME_COLOURS = {"delivered": "green", "denied": "yellow", "timeout": "grey", "error": "red"}


@dataclass(frozen=True)
class Words:
    """A registered text (a member's name, an item's title, a purpose) in the language it is shown in."""

    text: str
    lang: str


def in_language(texts: dict[str, str], language: str) -> Words:
    """The text in the page's language; else in the other Chinese script for a Chinese page, else English."""
    order = [language, *(["zh-Hant", "zh-Hans"] if language.startswith("zh") else []), "en", *texts]
    for candidate in order:
        text = texts.get(candidate)
        if isinstance(text, str) and text.strip():
            return Words(text, candidate)
    return Words("", language)


def duration(seconds: int) -> tuple[str, int]:
    """A length of time as a unit and a count people read at a glance (rounded up, never to zero)."""
    minutes = -(-seconds // 60)
    if minutes < 60:
        return "minutes", max(minutes, 1)
    hours = -(-seconds // 3600)
    if hours < 48 and seconds % 86400:
        return "hours", hours
    days = -(-seconds // 86400)
    if days >= 365 and days % 365 <= days // 365 // 4 + 1:  # whole years, allowing for leap days
        return "years", days // 365
    return "days", days


def local_today(request: Request) -> date:
    """Today in the platform's time zone: a resident turns 18 on their local birthday."""
    zone = ZoneInfo(request.app.state.settings.timezone)
    return utcnow().astimezone(zone).date()


async def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return await templates_of(request).render(request, name, context, status_code=status_code)


async def refused(request: Request, db: AsyncSession, exc: ConsentRefused) -> HTMLResponse:
    """The page for a refusal, in the resident's language; nothing the refused attempt changed is kept."""
    await db.rollback()
    if exc.status == 403 and exc.detail == "guardian":
        return await render(request, "exchange/guardian.html", 403)
    if exc.status == 403:
        return await render(request, "error.html", 403, status=403)
    kind = REFUSALS.get(exc.status, "invalid")
    status_code = exc.status if exc.status in REFUSALS else 422
    return await render(request, "exchange/refused.html", status_code, kind=kind, status="")


def item_rows(view: ConsentView, language: str) -> list[dict[str, Any]]:
    return [
        {
            "id": item.id,
            "title": in_language(item.title, language),
            "provider": in_language(item.provider_name, language),
            "optional": item.optional,
            "approved": item.approved,
        }
        for item in view.items
    ]


def consent_context(view: ConsentView, language: str) -> dict[str, Any]:
    return {
        "id": view.id,
        "status": view.status.value,
        "consumer": in_language(view.consumer_name, language),
        "purpose": in_language(view.purpose_description, language),
        "items": item_rows(view, language),
        "mode": view.mode,
        "valid_for": duration(view.valid_for),
        "valid_until": view.valid_until,
        "max_fetches": view.max_fetches,
        "fetches": view.fetches,
        "data_life": duration(view.data_life) if view.data_life else None,
        "created_at": view.created_at,
        "decided_at": view.decided_at,
        "updated_at": view.updated_at,
    }


# --- the review page ----------------------------------------------------------------------------------


@router.get("/exchange/consents/{consent_id}")
async def review(request: Request, db: SessionDep, consent_id: str, resident: AccountHolder) -> Response:
    """Who asks, why, for what from whom, how often, until when and for how long it may be kept."""
    desk = exchange_service(request).consents
    try:
        view = await desk.for_review(db, consent_id, resident.id)
    except ConsentRefused as exc:
        return await refused(request, db, exc)
    if view.status is not ConsentStatus.PENDING:
        return await render(request, "exchange/refused.html", 409, kind="decided", status=view.status.value)
    consent = consent_context(view, language_of(request))
    return await render(
        request,
        "exchange/review.html",
        consent=consent,
        required=[i for i in consent["items"] if not i["optional"]],
        optional=[i for i in consent["items"] if i["optional"]],
        until_if_now=utcnow() + timedelta(seconds=view.valid_for),
        request_expires_at=view.request_expires_at,
    )


@router.post("/exchange/consents/{consent_id}")
async def decide(request: Request, db: SessionDep, consent_id: str, resident: AccountHolder) -> Response:
    """Agree (with the optional items still ticked) or decline, then back to the service that asked."""
    desk = exchange_service(request).consents
    form = await request.form()
    action = form.get("action")
    included = {value for value in form.getlist("include") if isinstance(value, str)}
    try:
        view = await desk.for_review(db, consent_id, resident.id)
        if action not in ("approve", "decline") or not included <= {i.id for i in view.items}:
            raise ConsentRefused(422, "The form was not one this page sends.")
        left_out = {i.id for i in view.items if i.optional and i.id not in included}
        _, location = await desk.decide(
            db,
            consent_id,
            resident.id,
            approve=action == "approve",
            left_out=left_out if action == "approve" else set(),
            today=local_today(request),
        )
    except ConsentRefused as exc:
        return await refused(request, db, exc)
    return redirect(location)


# --- the resident's consents --------------------------------------------------------------------------


@router.get(ACCOUNT_CONSENTS)
async def consents(request: Request, db: SessionDep, resident: AccountHolder, notice: str = "") -> HTMLResponse:
    language = language_of(request)
    groups: dict[str, list[dict[str, Any]]] = {"active": [], "paused": [], "ended": []}
    for view in await exchange_service(request).consents.of_resident(db, resident.id):
        group = GROUPS.get(view.status)
        if group is not None:
            groups[group].append(consent_context(view, language))
    return await render(request, "exchange/consents.html", groups=groups, notice=notice if notice in NOTICES else "")


async def _change(request: Request, db: AsyncSession, consent_id: str, resident_id: str, action: str) -> Response:
    try:
        await exchange_service(request).consents.change(db, consent_id, resident_id, action)
    except ConsentRefused as exc:
        if exc.status == 409:  # already changed (a second click, another tab): say so on the list
            await db.rollback()
            return redirect(f"{ACCOUNT_CONSENTS}?notice=unchanged")
        return await refused(request, db, exc)
    return redirect(f"{ACCOUNT_CONSENTS}?notice={PAST[action]}")


@router.post(ACCOUNT_CONSENTS + "/{consent_id}/pause")
async def pause(request: Request, db: SessionDep, consent_id: str, resident: AccountHolder) -> Response:
    return await _change(request, db, consent_id, resident.id, "pause")


@router.post(ACCOUNT_CONSENTS + "/{consent_id}/resume")
async def resume(request: Request, db: SessionDep, consent_id: str, resident: AccountHolder) -> Response:
    return await _change(request, db, consent_id, resident.id, "resume")


@router.get(ACCOUNT_CONSENTS + "/{consent_id}/revoke")
async def confirm_revoke(request: Request, db: SessionDep, consent_id: str, resident: AccountHolder) -> Response:
    """Withdrawing cannot be undone, so it is confirmed on a page of its own (no script needed)."""
    try:
        view = await exchange_service(request).consents.for_review(db, consent_id, resident.id)
    except ConsentRefused as exc:
        return await refused(request, db, exc)
    if view.status is ConsentStatus.PENDING:  # a request nobody has answered is nobody's consent yet
        return await refused(request, db, ConsentRefused(404, "There is no such consent."))
    if view.status not in (ConsentStatus.ACTIVE, ConsentStatus.PAUSED):
        return redirect(f"{ACCOUNT_CONSENTS}?notice=unchanged")
    return await render(request, "exchange/revoke.html", consent=consent_context(view, language_of(request)))


@router.post(ACCOUNT_CONSENTS + "/{consent_id}/revoke")
async def revoke(request: Request, db: SessionDep, consent_id: str, resident: AccountHolder) -> Response:
    return await _change(request, db, consent_id, resident.id, "revoke")


# --- the history of the resident's data ---------------------------------------------------------------


def history_rows(entries: list[HistoryEntry], language: str) -> list[dict[str, Any]]:
    """Every entry, newest first, with names in the page's language."""
    return [_entry_row(entry, language) for entry in entries]


def _entry_row(entry: HistoryEntry, language: str) -> dict[str, Any]:
    titles = dict(entry.items)
    return {
        "at": entry.at,
        "event": entry.event,
        "consumer": in_language(entry.consumer_name, language),
        "purpose": in_language(entry.purpose_description, language),
        "items": [in_language(title, language) for _, title in entry.items],
        "outcomes": [
            {
                "provider": in_language(outcome.get("provider_name") or {}, language),
                "items": [in_language(titles.get(i, {"en": i}), language) for i in outcome.get("items", [])],
                "status": outcome.get("status", "error"),
                "colour": OUTCOME_COLOURS.get(str(outcome.get("status")), "red"),
            }
            for outcome in entry.outcomes
        ],
    }


@router.get("/account/data-use")
async def data_use(request: Request, db: SessionDep, resident: AccountHolder) -> HTMLResponse:
    entries = await exchange_service(request).consents.history(db, resident.id, HISTORY_LIMIT)
    return await render(request, "exchange/data_use.html", rows=history_rows(entries, language_of(request)))
