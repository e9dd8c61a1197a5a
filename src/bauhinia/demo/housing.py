"""The Housing Department's demo: a public rental housing application that fills itself in from other
departments' records, with the resident's consent, through the gateway (docs/exchange-protocol.md).

The journey: the start page offers "Fill in from government records" (residential address, and if the
resident wishes assessable income and driving licence, asked for as optional items) or "Fill in by hand".
Fetching sends the resident to the gateway's review page; the gateway sends them back to
``/demo/housing/consent-done`` with the ``state`` this site keeps for their visit; the site reads the
consent, fetches, and shows the form pre-filled, saying where each value came from and what was
not shared or could not be provided. The gateway's webhooks tell the site when a consent changes.

It is a demo: visits, drafts, applications and consent events live in this process's memory.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bauhinia.demo.providers import PROVIDERS
from bauhinia.demo.web import NotSetUp, not_set_up
from bauhinia.sdk import (
    Consent,
    ConsentEvent,
    ConsumerClient,
    DataResult,
    GatewayProblem,
    ProviderOutcome,
    ResponseRefused,
)

if TYPE_CHECKING:
    from bauhinia.demo.departments import Departments

HOUSING = "HK/GOV/HD/applications"
DEPARTMENT = "Housing Department (demo)"
PURPOSE = "housing.public-rental-application"
RETURN_PATH = "/demo/housing/consent-done"  # registered by `bauhinia demo` as Housing's redirect URI
# The consent lets the department refresh the application from records while it is being assessed:
# up to MAX_FETCHES times over VALID_FOR seconds (and the resident can pause or withdraw it).
VALID_FOR = 30 * 24 * 3600
MAX_FETCHES = 5
DATA_LIFE = 30 * 24 * 3600  # the department keeps what it receives for 30 days
ADDRESS, INCOME, LICENCE = "immd.residential-address", "ird.assessable-income", "td.driving-licence"
OPTIONAL_ITEMS = (INCOME, LICENCE)
ITEM_TITLES = {ADDRESS: "residential address", INCOME: "assessable income", LICENCE: "driving licence"}
DEPARTMENT_NAMES = {provider.system_id: provider.name for provider in PROVIDERS}
COOKIE = "hd-demo-visit"
VISIT_SECONDS = 2 * 3600
MAX_VISITS = 10_000
MAX_APPLICATIONS = 10_000
MAX_EVENTS = 10_000
MAX_WEBHOOK_BYTES = 64 * 1024
MAX_PENDING = 5  # consent requests one visit may have under way at once (several tabs)
ZONE = ZoneInfo("Asia/Hong_Kong")
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
REFERENCE = re.compile(r"^HD-[A-Z2-9]{4}-[A-Z2-9]{4}$")
REGIONS = ("Hong Kong Island", "Kowloon", "New Territories")
HOUSEHOLD_SIZES = tuple(str(n) for n in range(1, 11))
STATUS_WORDS = {
    "ACTIVE": "active",
    "PAUSED": "paused by you",
    "REVOKED": "withdrawn by you",
    "EXPIRED": "ended",
    "REJECTED": "declined",
    "PENDING": "waiting for your answer",
}


# --- the application form ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str  # the input's name and id
    label: str
    group: str  # applicant, address, income, licence
    required: str = ""  # the message when it is left empty; empty when the field is optional
    max_length: int = 120
    pattern: re.Pattern[str] | None = None
    invalid: str = ""
    choices: tuple[str, ...] = ()
    hint: str = ""
    autocomplete: str = ""
    width: str = "govuk-input--width-20"
    default: str = ""  # what a new form starts with


FIELDS = (
    Field(
        "applicant-name",
        "Full name in English",
        "applicant",
        required="Enter your full name",
        autocomplete="name",
        width="govuk-!-width-two-thirds",
    ),
    Field(
        "household-size",
        "Number of people in your household",
        "applicant",
        required="Select the number of people in your household",
        choices=HOUSEHOLD_SIZES,
        hint="Including yourself.",
        default="1",
    ),
    Field("address-flat", "Flat or room", "address", max_length=16, width="govuk-input--width-5"),
    Field("address-floor", "Floor", "address", max_length=8, width="govuk-input--width-5"),
    Field("address-block", "Block or tower", "address", max_length=16, width="govuk-input--width-10"),
    Field(
        "address-building",
        "Building or estate",
        "address",
        required="Enter the building or estate of your address",
        width="govuk-!-width-two-thirds",
    ),
    Field("address-street", "Street", "address", width="govuk-!-width-two-thirds"),
    Field("address-district", "District", "address", required="Enter the district of your address", max_length=40),
    Field("address-region", "Region", "address", required="Select the region of your address", choices=REGIONS),
    Field(
        "income",
        "Assessable income for the year, in Hong Kong dollars",
        "income",
        max_length=10,
        pattern=re.compile(r"^[0-9]{1,10}$"),
        invalid="Enter your income as a whole number of dollars, like 312000",
        hint="As assessed by the Inland Revenue Department. Leave empty if you had no assessment.",
        width="govuk-input--width-10",
    ),
    Field(
        "income-year",
        "Year of assessment",
        "income",
        max_length=7,
        pattern=re.compile(r"^[0-9]{4}/[0-9]{2}$"),
        invalid="Enter the year of assessment like 2025/26",
        hint="For example, 2025/26.",
        width="govuk-input--width-5",
    ),
    Field(
        "licence-number",
        "Driving licence number",
        "licence",
        max_length=12,
        pattern=re.compile(r"^[A-Z0-9]{6,12}$"),
        invalid="Enter a licence number of 6 to 12 capital letters and digits",
        width="govuk-input--width-10",
    ),
    Field(
        "licence-classes",
        "Vehicle classes",
        "licence",
        max_length=40,
        hint="For example, 1, 2.",
        width="govuk-input--width-10",
    ),
    Field(
        "licence-expiry",
        "Licence expiry date",
        "licence",
        max_length=10,
        pattern=re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
        invalid="Enter the expiry date like 2031-05-31",
        hint="Year, month and day, for example 2031-05-31.",
        width="govuk-input--width-10",
    ),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}
DEFAULTS = {f.name: f.default for f in FIELDS if f.default}
GROUP_TITLES = {
    "applicant": "About you",
    "address": "Your residential address",
    "income": "Your income",
    "licence": "Your driving licence (if you want to apply for a parking space)",
}
GROUP_OF_ITEM = {ADDRESS: "address", INCOME: "income", LICENCE: "licence"}
# How a released value (docs: the items' JSON Schemas in the catalogue) fills the form's fields.
FILLS: dict[str, dict[str, str]] = {
    ADDRESS: {
        "flat": "address-flat",
        "floor": "address-floor",
        "block": "address-block",
        "building": "address-building",
        "street": "address-street",
        "district": "address-district",
        "region": "address-region",
    },
    INCOME: {"assessable_income_hkd": "income", "year_of_assessment": "income-year"},
    LICENCE: {"licence_number": "licence-number", "classes": "licence-classes", "expiry_date": "licence-expiry"},
}


def validate(values: Mapping[str, str]) -> dict[str, str]:
    """The message for each field in error, in the form's order."""
    errors = {}
    for f in FIELDS:
        value = values.get(f.name, "")
        if not value:
            if f.required:
                errors[f.name] = f.required
        elif any(unicodedata.category(c) == "Cc" for c in value):
            errors[f.name] = f"{f.label} must not contain control characters"
        elif len(value) > f.max_length:
            errors[f.name] = f"{f.label} must be {f.max_length} characters or fewer"
        elif f.choices and value not in f.choices:
            errors[f.name] = f.required or f"Select one of the {f.label.lower()} options"
        elif f.pattern is not None and not f.pattern.match(value):
            errors[f.name] = f.invalid
    if values.get("income-year") and not values.get("income") and "income" not in errors:
        errors["income"] = "Enter your income for the year of assessment you gave"
    return errors


# --- what the site remembers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """Something the resident should know about what was (not) filled in, in plain words."""

    id: str
    text: str


@dataclass(frozen=True)
class Pending:
    """A consent request sent from this visit, waiting for the resident to come back."""

    state: str
    consent_id: str
    items: tuple[str, ...]


@dataclass
class Draft:
    """The form as government records filled it in."""

    consent_id: str | None
    values: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # group -> "From … (as of …)"
    notes: list[Note] = field(default_factory=list)

    def source_of(self, name: str, value: str) -> str | None:
        """Where a field's value came from, as long as the resident kept it as delivered."""
        if value and self.values.get(name) == value:
            return self.sources.get(FIELD_BY_NAME[name].group)
        return None


@dataclass
class Visit:
    id: str
    csrf: str
    started: float
    pending: list[Pending] = field(default_factory=list)  # consent requests sent from this visit (tabs)
    draft: Draft | None = None


@dataclass
class Application:
    reference: str
    visit_id: str
    submitted_at: datetime
    values: dict[str, str]
    from_records: dict[str, str]  # field -> "From … (as of …)"
    consent_id: str | None
    notice: Note | None = None  # what the last "refresh from records" gave
    notice_ok: bool = False


def bounded_put(store: OrderedDict[str, Any], key: str, value: Any, limit: int) -> None:
    store[key] = value
    store.move_to_end(key)
    while len(store) > limit:
        store.popitem(last=False)


def day(value: object) -> str:
    """2024-05-02 (or a date) as "2 May 2024"."""
    try:
        when = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)
    return f"{when.day} {when:%B %Y}"


def moment(value: object) -> str:
    """A time (datetime or seconds since the epoch) in Hong Kong time."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        local = value.astimezone(ZONE) if value.tzinfo else value.replace(tzinfo=UTC).astimezone(ZONE)
        return f"{local.day} {local:%B %Y at %H:%M} (Hong Kong time)"
    return str(value)


def department(system_id: str) -> str:
    return DEPARTMENT_NAMES.get(system_id, system_id)


def titles(items: Iterable[str]) -> str:
    names = [ITEM_TITLES.get(i, i) for i in items] or ["records"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def as_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
        return ", ".join(str(v) for v in value)
    return None


def filled_from(result: DataResult) -> tuple[dict[str, str], dict[str, str]]:
    """The form fields each released value fills, and where each group's values came from."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for item_id, released in result.values.items():
        fills = FILLS.get(item_id)
        if fills is None or not isinstance(released.value, dict):
            continue
        for key, name in fills.items():
            text = as_text(released.value.get(key))
            if text:
                values[name] = text[: FIELD_BY_NAME[name].max_length]
        provider = released.provider or released.source
        sources[GROUP_OF_ITEM[item_id]] = f"From {department(provider)} (as of {day(released.as_of)})"
    return values, sources


def outcome_note(outcome: ProviderOutcome) -> Note | None:
    who, what = department(outcome.provider), titles(outcome.items)
    code = outcome.provider.split("/")[2].lower() if outcome.provider.count("/") >= 2 else "provider"
    if outcome.status == "delivered":
        return None
    if outcome.status == "denied":
        reason = (outcome.detail or "it holds no record it can share")[:300]
        return Note(f"not-provided-{code}", f"The {who} could not provide your {what}: {reason}")
    if outcome.status == "timeout":
        return Note(f"not-provided-{code}", f"The {who} did not answer in time, so your {what} could not be filled in.")
    return Note(
        f"not-provided-{code}",
        f"The {who}'s answer could not be used, so your {what} could not be filled in."
        + (f" ({outcome.detail[:300]})" if outcome.detail else ""),
    )


def draft_from(result: DataResult, consent: Consent, asked: Iterable[str]) -> Draft:
    values, sources = filled_from(result)
    notes = []
    shared = set(consent.items)
    not_shared = [i for i in asked if i not in shared]
    if not_shared:
        notes.append(Note("not-shared", f"You chose not to share your {titles(not_shared)}."))
    notes += [n for n in (outcome_note(o) for o in result.outcomes) if n is not None]
    return Draft(consent.id, values, sources, notes)


def refusal(exc: GatewayProblem, doing: str) -> Note:
    """The gateway's refusal (an RFC 9457 problem) in plain words."""
    said = f" The gateway said: “{exc.detail}”" if exc.detail else ""
    if exc.status == 409:
        return Note("refused", f"We could not {doing}: your consent no longer allows it.{said}")
    if exc.status == 404:
        return Note("refused", f"We could not {doing}: the gateway does not know this consent.{said}")
    if exc.status in (401, 403):
        return Note("refused", f"We could not {doing}: the Housing Department could not sign in to the gateway.")
    return Note("refused", f"We could not {doing}: the gateway refused ({exc.status} {exc.title}).{said}")


UNREACHABLE = "the gateway could not be reached. Please try again later"
UNVERIFIED = "the gateway's answer failed our checks, so we did not use it"


# --- the site ---------------------------------------------------------------------------------------------


class HousingOffice:
    def __init__(self, departments: Departments) -> None:
        self.departments = departments
        self.visits: OrderedDict[str, Visit] = OrderedDict()
        self.applications: OrderedDict[str, Application] = OrderedDict()
        self.events: OrderedDict[str, ConsentEvent] = OrderedDict()  # the latest event of each consent
        self.seen_events: OrderedDict[str, None] = OrderedDict()

    def routes(self) -> list[Route]:
        return [
            Route("/housing", self.home, methods=["GET"]),
            Route("/housing/", self.home, methods=["GET"]),
            Route("/housing/apply", self.start, methods=["GET"]),
            Route("/housing/apply/fetch", self.fetch, methods=["POST"]),
            Route("/housing/consent-done", self.consent_done, methods=["GET"]),
            Route("/housing/apply/form", self.form, methods=["GET"]),
            Route("/housing/apply/submit", self.submit, methods=["POST"]),
            Route("/housing/application/{reference}", self.application, methods=["GET"]),
            Route("/housing/application/{reference}/refresh", self.refresh, methods=["POST"]),
            Route("/housing/exchange/webhook", self.webhook, methods=["POST"]),
        ]

    # --- visits (a server-side session per browser, keyed by a random cookie) ---

    def visit_of(self, request: Request) -> Visit | None:
        token = request.cookies.get(COOKIE, "")
        visit = self.visits.get(token)
        if visit is not None and time.time() - visit.started > VISIT_SECONDS:
            del self.visits[token]
            return None
        return visit

    def start_visit(self) -> Visit:
        visit = Visit(secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time())
        bounded_put(self.visits, visit.id, visit, MAX_VISITS)
        return visit

    def keep(self, request: Request, response: Response, visit: Visit) -> Response:
        if request.cookies.get(COOKIE) != visit.id:
            response.set_cookie(
                COOKIE,
                visit.id,
                max_age=VISIT_SECONDS,
                path=f"{request.scope.get('root_path', '')}/housing",
                secure=self.departments.gateway.startswith("https://"),
                httponly=True,
                samesite="lax",  # sent when the gateway sends the browser back (a top-level GET)
            )
        return response

    def render(self, request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
        return self.departments.render(request, template, status_code, department=DEPARTMENT, **context)

    def redirect(self, request: Request, path: str) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/housing{path}", status_code=303)

    def expired(self, request: Request) -> Response:
        return self.render(
            request,
            "error.html",
            403,
            heading="This form has expired",
            message="For your security, forms stop working after a while. Nothing was sent. Please start again.",
            start_again=True,
        )

    async def posted(self, request: Request) -> tuple[Visit, FormData] | None:
        """The visit and its form, when the form carries the visit's CSRF token."""
        form = await request.form(max_files=0, max_fields=64)
        visit = self.visit_of(request)
        token = form.get("csrf_token")
        if visit is None or not isinstance(token, str):
            return None
        if not secrets.compare_digest(token.encode(), visit.csrf.encode()):
            return None
        return visit, form

    async def consumer(self) -> ConsumerClient:
        return await self.departments.consumer(HOUSING)

    # --- pages ---

    async def home(self, request: Request) -> Response:
        return self.redirect(request, "/apply")

    async def start(self, request: Request) -> Response:
        visit = self.visit_of(request) or self.start_visit()
        response = self.render(
            request,
            "housing/start.html",
            csrf=visit.csrf,
            optional=[
                (INCOME, "income", "Assessable income", "Inland Revenue Department"),
                (LICENCE, "licence", "Driving licence", "Transport Department"),
            ],
            data_life_days=DATA_LIFE // 86400,
        )
        return self.keep(request, response, visit)

    async def fetch(self, request: Request) -> Response:
        """Ask the gateway for the resident's consent, then send them to review it."""
        posted = await self.posted(request)
        if posted is None:
            return self.expired(request)
        visit, form = posted
        chosen = {v for v in form.getlist("items") if isinstance(v, str)}
        optional = [item for item in OPTIONAL_ITEMS if item in chosen]
        state = secrets.token_urlsafe(24)
        try:
            client = await self.consumer()
            asked = await client.request_consent(
                purpose=PURPOSE,
                items=[ADDRESS],
                optional=optional,
                mode="period",
                valid_for=VALID_FOR,
                max_fetches=MAX_FETCHES,
                data_life=DATA_LIFE,
                redirect_uri=f"{self.departments.gateway}{RETURN_PATH}",
                state=state,
            )
        except NotSetUp as exc:
            return not_set_up(request, exc)
        except GatewayProblem as exc:
            return self.render(
                request, "error.html", 502, heading="We could not ask for your consent", message=refusal_text(exc)
            )
        except (ResponseRefused, httpx.HTTPError):
            message = f"We could not ask for your consent: {UNREACHABLE}, or fill in the form by hand."
            return self.render(request, "error.html", 502, heading="We could not ask for your consent", message=message)
        visit.pending = [*visit.pending[-(MAX_PENDING - 1) :], Pending(state, asked.id, (ADDRESS, *optional))]
        return RedirectResponse(asked.review_url, status_code=303)

    async def consent_done(self, request: Request) -> Response:
        """Where the gateway sends the resident back: check the state, read the consent, fetch once."""
        visit = self.visit_of(request)
        consent_id = request.query_params.get("consent_id", "")
        state = request.query_params.get("state", "")
        pending = next(
            (
                p
                for p in (visit.pending if visit is not None else [])
                if secrets.compare_digest(state.encode(), p.state.encode()) and p.consent_id == consent_id
            ),
            None,
        )
        if visit is not None and pending is None and visit.draft and visit.draft.consent_id == consent_id:
            return self.redirect(request, "/apply/form?by=records")  # back again (reload, back button)
        if visit is None or pending is None:
            return self.render(
                request,
                "error.html",
                400,
                heading="We could not match this answer to your application",
                message="This page was opened with an answer that does not belong to an application started in "
                "this browser, so nothing was fetched. Please start your application again.",
                start_again=True,
            )
        visit.pending.remove(pending)  # each answer is taken once
        try:
            client = await self.consumer()
            consent = await client.consent(consent_id)
            if consent.status == "ACTIVE":
                visit.draft = draft_from(await client.fetch(consent_id), consent, pending.items)
            elif consent.status == "REJECTED":
                note = Note("declined", "You chose not to share your records, so nothing was filled in.")
                visit.draft = Draft(None, notes=[note])
            else:
                words = STATUS_WORDS.get(consent.status, consent.status.lower())
                note = Note("not-active", f"Your consent is {words}, so nothing was filled in.")
                visit.draft = Draft(None, notes=[note])
        except NotSetUp as exc:
            return not_set_up(request, exc)
        except GatewayProblem as exc:
            visit.draft = Draft(None, notes=[refusal(exc, "fetch your records")])
        except ResponseRefused:
            visit.draft = Draft(None, notes=[Note("unverified", f"We could not fetch your records: {UNVERIFIED}.")])
        except httpx.HTTPError:
            visit.draft = Draft(None, notes=[Note("unreachable", f"We could not fetch your records: {UNREACHABLE}.")])
        return self.redirect(request, "/apply/form?by=records")

    def form_page(
        self,
        request: Request,
        visit: Visit,
        draft: Draft | None,
        values: Mapping[str, str],
        errors: Mapping[str, str] | None = None,
    ) -> Response:
        errors = errors or {}
        groups = [(group, title, [f for f in FIELDS if f.group == group]) for group, title in GROUP_TITLES.items()]
        sources = {
            f.name: source
            for f in FIELDS
            if draft is not None and (source := draft.source_of(f.name, values.get(f.name, "")))
        }
        described = {
            f.name: " ".join(
                f"{f.name}-{part}"
                for part, present in (("hint", f.hint), ("source", f.name in sources), ("error", f.name in errors))
                if present
            )
            for f in FIELDS
        }
        response = self.render(
            request,
            "housing/form.html",
            400 if errors else 200,
            described=described,
            csrf=visit.csrf,
            groups=groups,
            values=values,
            errors=errors,
            sources=sources,
            group_sources=draft.sources if draft else {},
            notes=draft.notes if draft else [],
            by="records" if draft is not None else "hand",
        )
        return self.keep(request, response, visit)

    async def form(self, request: Request) -> Response:
        visit = self.visit_of(request) or self.start_visit()
        draft = visit.draft if request.query_params.get("by") == "records" else None
        return self.form_page(request, visit, draft, {**DEFAULTS, **(draft.values if draft else {})})

    async def submit(self, request: Request) -> Response:
        posted = await self.posted(request)
        if posted is None:
            return self.expired(request)
        visit, form = posted
        values = {f.name: text.strip() for f in FIELDS if isinstance(text := form.get(f.name, ""), str)}
        draft = visit.draft if form.get("by") == "records" else None
        errors = validate(values)
        if errors:
            return self.form_page(request, visit, draft, values, errors)
        reference = "HD-" + "-".join("".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(4)) for _ in range(2))
        from_records = {
            name: source for name, value in values.items() if draft and (source := draft.source_of(name, value))
        }
        application = Application(
            reference,
            visit.id,
            datetime.now(UTC),
            values,
            from_records,
            draft.consent_id if draft else None,
        )
        bounded_put(self.applications, reference, application, MAX_APPLICATIONS)
        visit.draft = None
        return self.redirect(request, f"/application/{quote(reference)}")

    def application_of(self, request: Request) -> tuple[Visit, Application] | None:
        """An application, only for the visit (browser) that submitted it."""
        reference = str(request.path_params.get("reference", ""))
        visit = self.visit_of(request)
        application = self.applications.get(reference) if REFERENCE.match(reference) else None
        if visit is None or application is None or application.visit_id != visit.id:
            return None
        return visit, application

    def not_found(self, request: Request) -> Response:
        return self.render(
            request,
            "error.html",
            404,
            heading="Application not found",
            message="We cannot show this application. You can see an application only in the browser you sent it from.",
            start_again=True,
        )

    async def application(self, request: Request) -> Response:
        found = self.application_of(request)
        if found is None:
            return self.not_found(request)
        visit, application = found
        event = self.events.get(application.consent_id) if application.consent_id else None
        rows = [
            (f, application.values.get(f.name, ""), application.from_records.get(f.name))
            for f in FIELDS
            if application.values.get(f.name)
        ]
        return self.render(
            request,
            "housing/application.html",
            csrf=visit.csrf,
            application=application,
            submitted_at=moment(application.submitted_at),
            rows=rows,
            event=event,
            event_status=event.status if event else None,
            event_at=moment(event.issued_at) if event else "",
        )

    async def refresh(self, request: Request) -> Response:
        """Fetch again under the application's consent: for a one-time consent, the gateway refuses."""
        posted = await self.posted(request)
        if posted is None:
            return self.expired(request)
        found = self.application_of(request)
        if found is None:
            return self.not_found(request)
        _, application = found
        if application.consent_id is None:
            application.notice = Note(
                "refused", "You filled in this application by hand: there is no consent to fetch records under."
            )
            application.notice_ok = False
            return self.redirect(request, f"/application/{application.reference}")
        try:
            client = await self.consumer()
            result = await client.fetch(application.consent_id)
        except NotSetUp as exc:
            return not_set_up(request, exc)
        except GatewayProblem as exc:
            application.notice, application.notice_ok = refusal(exc, "refresh your application from records"), False
        except ResponseRefused:
            application.notice = Note("unverified", f"We could not refresh your application: {UNVERIFIED}.")
            application.notice_ok = False
        except httpx.HTTPError:
            application.notice = Note("unreachable", f"We could not refresh your application: {UNREACHABLE}.")
            application.notice_ok = False
        else:
            values, sources = filled_from(result)
            application.values.update(values)
            for name in values:
                application.from_records[name] = sources[FIELD_BY_NAME[name].group]
            notes = [n.text for n in (outcome_note(o) for o in result.outcomes) if n is not None]
            application.notice = Note("refreshed", " ".join(["Your application was refreshed from records.", *notes]))
            application.notice_ok = True
        return self.redirect(request, f"/application/{application.reference}")

    # --- the gateway's webhook ---

    async def webhook(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return JSONResponse({"error": "The event is too large."}, status_code=413)
        try:
            client = await self.consumer()
            event = await client.verify_webhook(body)
        except NotSetUp as exc:
            return not_set_up(request, exc)
        except ResponseRefused as exc:
            return JSONResponse({"error": exc.reason}, status_code=400)
        except (GatewayProblem, httpx.HTTPError):  # the gateway's keys could not be read: it will try again
            return JSONResponse({"error": "The gateway's keys could not be read."}, status_code=503)
        if event.id not in self.seen_events:  # events may come more than once, and out of order
            bounded_put(self.seen_events, event.id, None, MAX_EVENTS)
            latest = self.events.get(event.consent_id)
            if latest is None or latest.issued_at <= event.issued_at:
                bounded_put(self.events, event.consent_id, event, MAX_EVENTS)
        return Response(status_code=204)


def refusal_text(exc: GatewayProblem) -> str:
    return refusal(exc, "ask for your consent").text + " You can fill in the form by hand instead."
