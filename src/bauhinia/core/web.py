"""The web layer: templates in three languages, CSRF protection, security headers, request ids.

The edge middleware is plain ASGI (no per-request task overhead): it gives every
request an id and a CSP nonce, caps request bodies, sets security headers and
any session cookie the handler scheduled, and writes one JSON access-log line.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bauhinia.core import i18n
from bauhinia.core.database import SessionDep
from bauhinia.core.errors import problem_response
from bauhinia.core.sessions import PendingCookie, SessionKind, SessionManager

log = structlog.get_logger("bauhinia.access")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        hsts: bool,
        observe: Any = None,
        larger_bodies: dict[str, int] | None = None,
    ) -> None:
        self.app, self.max_body_bytes, self.hsts, self.observe = app, max_body_bytes, hsts, observe
        # Paths that take more (the verification page's photo upload), each with its own limit.
        self.larger_bodies = larger_bodies or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        base = scope.get("root_path", "")  # routing into a mounted app extends it (see route_template)
        headers = dict(scope["headers"])
        offered_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = offered_id if REQUEST_ID_PATTERN.match(offered_id) else secrets.token_hex(12)
        nonce = secrets.token_urlsafe(18)
        state = scope.setdefault("state", {})
        state.update(request_id=request_id, csp_nonce=nonce)
        declared = headers.get(b"content-length", b"0")
        status_holder = {"status": 500}
        limit = self.larger_bodies.get(scope["path"], self.max_body_bytes)

        if not declared.isdigit() or int(declared) > limit:
            response = problem_response(
                413 if declared.isdigit() else 400,
                "Content Too Large" if declared.isdigit() else "Bad Request",
                f"Request bodies are limited to {limit} bytes."
                if declared.isdigit()
                else "Invalid Content-Length header.",
            )
            await response(scope, receive, self._sender(send, state, status_holder, scope["path"]))
            self._done(scope, status_holder["status"], started, request_id, base)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, self._sender(send, state, status_holder, scope["path"]))
        except BodyTooLarge:
            response = problem_response(413, "Content Too Large", f"Request bodies are limited to {limit} bytes.")
            await response(scope, receive, self._sender(send, state, status_holder, scope["path"]))
        finally:
            self._done(scope, status_holder["status"], started, request_id, base)

    def _sender(self, send: Send, state: dict[str, Any], status_holder: dict[str, int], path: str) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                response_headers = MutableHeaders(scope=message)
                self._security_headers(response_headers, state["csp_nonce"], path)
                response_headers["x-request-id"] = state["request_id"]
                for cookie in state.get("pending_cookies", []):
                    response_headers.append("set-cookie", _cookie_header(cookie))
            await send(message)

        return wrapped

    def _security_headers(self, headers: MutableHeaders, nonce: str, path: str) -> None:
        policy = (
            f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'"
        )
        # form-action also governs the redirects that follow a form post (CSP 3, enforced by Chromium): on
        # residents' pages a sign-in, consent or logout form ends with a redirect to a department's service
        # on another origin, so only the staff pages, which never leave the site, restrict it.
        if session_kind_for(path) is SessionKind.STAFF:
            policy += "; form-action 'self'"
        headers["content-security-policy"] = policy
        headers["x-content-type-options"] = "nosniff"
        headers["x-frame-options"] = "DENY"
        headers["referrer-policy"] = "no-referrer"
        headers["cross-origin-opener-policy"] = "same-origin"
        headers["cross-origin-resource-policy"] = "same-origin"
        headers["permissions-policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
        if self.hsts:
            headers["strict-transport-security"] = "max-age=63072000; includeSubDomains"
        if headers.get("content-type", "").startswith("text/html"):
            headers["cache-control"] = "no-store"

    def _done(self, scope: Scope, status: int, started: float, request_id: str, base: str) -> None:
        elapsed = time.perf_counter() - started
        template = route_template(scope, base)
        if self.observe is not None:
            self.observe(scope["method"], template, status, elapsed)
        log.info(
            "request",
            request_id=request_id,
            method=scope["method"],
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )


def route_template(scope: Scope, base: str) -> str:
    """The label a request is counted and logged under: its route's template (never the raw path). Routing
    into a mounted app (the demo departments, static files) extends ``root_path``: that mount point is part
    of the label, so `/demo/housing/apply` is not counted as a `/housing/apply` of the platform's own."""
    mount = scope.get("root_path", "")[len(base) :]
    route = getattr(scope.get("route"), "path", None)
    if route is not None:
        return f"{mount}{route}"
    return mount or "unmatched"


def _cookie_header(cookie: PendingCookie) -> str:
    jar: SimpleCookie = SimpleCookie()
    jar[cookie.name] = cookie.value
    morsel = jar[cookie.name]
    morsel["path"] = "/"
    morsel["httponly"] = True
    morsel["samesite"] = cookie.samesite
    morsel["max-age"] = cookie.max_age
    if cookie.secure:
        morsel["secure"] = True
    return morsel.OutputString()


def language_of(request: Request) -> str:
    cached = getattr(request.state, "language", None)
    if isinstance(cached, str):
        return cached
    language = (
        i18n.normalise(request.cookies.get(i18n.LANGUAGE_COOKIE))
        or i18n.from_accept_language(request.headers.get("accept-language", ""))
        or i18n.DEFAULT_LANGUAGE
    )
    request.state.language = language
    return language


def translator_of(request: Request) -> i18n.Translator:
    return i18n.Translator(language_of(request))


def safe_next(target: str | None, default: str = "/") -> str:
    """Only same-site relative paths are followed (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


@dataclass
class Templates:
    environments: dict[str, Environment]

    @classmethod
    def from_directories(cls, directories: Iterable[Path], timezone: str = "Asia/Hong_Kong") -> Templates:
        paths = [str(d) for d in directories]
        zone = ZoneInfo(timezone)
        environments = {}
        for language in i18n.LANGUAGES:
            env = Environment(
                loader=FileSystemLoader(paths),
                autoescape=select_autoescape(default=True),
                undefined=StrictUndefined,
                extensions=["jinja2.ext.i18n"],
                auto_reload=False,
            )
            env.install_gettext_translations(i18n.translations(language), newstyle=True)  # type: ignore[attr-defined]
            env.globals.update(languages=i18n.LANGUAGES, autonyms=i18n.AUTONYMS, quote=quote)
            env.filters["local_time"] = partial(local_time, zone=zone)
            environments[language] = env
        return cls(environments)

    async def render(
        self, request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
    ) -> HTMLResponse:
        language = language_of(request)
        page = {
            "request": request,
            "lang": language,
            "csp_nonce": request.state.csp_nonce,
            "csrf_token": await csrf_token_for(request),
            "current_path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            "signed_in": getattr(request.state, "signed_in", False),
            "staff_signed_in": getattr(request.state, "staff_signed_in", False),
        }
        page.update(context or {})
        html = self.environments[language].get_template(name).render(page)
        return HTMLResponse(html, status_code=status_code)


def local_time(moment: datetime, zone: ZoneInfo, with_time: bool = True) -> str:
    """A stored UTC time as people read it: in the platform's time zone, with the zone named."""
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%d %H:%M %Z") if with_time else local.strftime("%Y-%m-%d")


def templates_of(request: Request) -> Templates:
    templates: Templates = request.app.state.templates
    return templates


def session_kind_for(path: str) -> SessionKind:
    return SessionKind.STAFF if path == "/staff" or path.startswith("/staff/") else SessionKind.RESIDENT


async def csrf_token_for(request: Request) -> str:
    """The session's CSRF token, starting an anonymous session if there is none yet."""
    manager: SessionManager = request.app.state.session_manager
    db = getattr(request.state, "db", None)
    if db is not None:
        return (await manager.ensure(request, db, session_kind_for(request.url.path))).csrf_token
    async with request.app.state.sessionmaker() as own:
        return (await manager.ensure(request, own, session_kind_for(request.url.path))).csrf_token


async def verify_csrf(request: Request, db: SessionDep) -> None:
    """Router dependency: every state-changing request from a browser carries the session's token."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfFailure
    manager: SessionManager = request.app.state.session_manager
    # Locked to the end of the transaction: the request may change the row (a spent challenge, a
    # rotation), and a concurrent request in the same session then waits instead of racing.
    row = await manager.load(request, db, session_kind_for(request.url.path), lock=True)
    offered = request.headers.get(CSRF_HEADER, "")
    if not offered and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        offered = value if isinstance(value, str) else ""
    if row is None or not offered or not secrets.compare_digest(offered, row.csrf_token):
        raise CsrfFailure


class CsrfFailure(Exception):
    """The form's CSRF token was missing or wrong; the person is shown a page that says so."""


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
