"""create_app(settings): assembles the ASGI app from the domain routers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bauhinia import __version__
from bauhinia.core import hosts
from bauhinia.core import routes as core_routes
from bauhinia.core.database import create_engine, create_sessionmaker
from bauhinia.core.errors import install_error_handlers, problem_response, wants_html
from bauhinia.core.hosts import LoopbackRedirectMiddleware
from bauhinia.core.i18n import N_
from bauhinia.core.keys import KeyRing
from bauhinia.core.observability import Metrics, configure_logging
from bauhinia.core.outbox import Deliverer
from bauhinia.core.sessions import SessionManager
from bauhinia.core.web import CsrfFailure, EdgeMiddleware, Templates, templates_of, translator_of
from bauhinia.demo import Departments, create_departments
from bauhinia.demo.witness import PartnerWitness
from bauhinia.eproof import api as eproof_api
from bauhinia.eproof import views as eproof_views
from bauhinia.eproof.service import EproofService
from bauhinia.exchange import api as exchange_api
from bauhinia.exchange import views as exchange_views
from bauhinia.exchange.service import ExchangeService
from bauhinia.identity import staff_views
from bauhinia.identity import views as identity_views
from bauhinia.identity.passkeys import RelyingParty
from bauhinia.identity.service import IdentityService, RoleRequired, SetupRequired, SignInRequired
from bauhinia.oidc import api as oidc_api
from bauhinia.oidc import operator_api
from bauhinia.oidc import views as oidc_views
from bauhinia.oidc.ledger import TokenLedger
from bauhinia.oidc.service import OidcService
from bauhinia.portal import views as portal_views
from bauhinia.settings import Mode, Settings

PACKAGE = Path(__file__).resolve().parent
CSRF_EXPLANATION = N_(
    "For your security, forms stop working after a while or when they come from another website. Nothing was changed."
)
TEMPLATE_DIRS = [
    PACKAGE / domain / "templates" for domain in ("core", "identity", "oidc", "exchange", "eproof", "portal")
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    engine = create_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    keyring = KeyRing(settings.master_secret())
    metrics = Metrics()
    public = urlsplit(settings.public_url)

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        deliverer: Deliverer = application.state.deliverer  # read here: a test may replace it before start
        await deliverer.start()
        witnessing = _start_demo_witness(application, settings)
        try:
            yield
        finally:
            await deliverer.stop()
            if witnessing is not None:
                witnessing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await witnessing
            await application.state.exchange.forwarder.close()
            departments: Departments | None = getattr(application.state, "departments", None)
            if departments is not None:
                await departments.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Bauhinia",
        version=__version__,
        summary="Open-source digital public infrastructure: identity, consented data exchange, e-Proof.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load scripts from a CDN, which the CSP (rightly) refuses
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.deliverer = Deliverer(
        engine,
        metrics=metrics,
        poll_interval=settings.outbox_poll_interval,
        concurrency=settings.outbox_concurrency,
        timeout=settings.outbox_timeout,
    )
    app.state.keyring = keyring
    app.state.metrics = metrics
    app.state.templates = Templates.from_directories(TEMPLATE_DIRS, settings.timezone)
    app.state.session_manager = SessionManager(
        keyring=keyring,
        secure=settings.secure_transport,
        https=public.scheme == "https",
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )
    origin = f"{public.scheme}://{public.netloc}"
    app.state.identity = IdentityService(
        keyring, RelyingParty(rp_id=public.hostname or "localhost", name="Bauhinia", origin=origin)
    )
    app.state.oidc = OidcService(
        issuer=settings.public_url.rstrip("/"),
        keyring=keyring,
        identity=app.state.identity,
        ledger=TokenLedger(engine),
        persist_client_credentials_tokens=settings.oidc_persist_access_tokens,
        require_dpop_nonce=settings.oidc_dpop_nonce,
    )
    app.state.exchange = ExchangeService(app.state.oidc, provider_timeout=settings.exchange_provider_timeout)
    app.state.eproof = EproofService(keyring, settings.public_url, app.state.identity, app.state.exchange)
    app.state.eproof.witness_vkeys = settings.eproof_witnesses
    app.state.sign_out_hooks = [oidc_views.sign_out_hook]
    install_error_handlers(app)
    _install_guard_handlers(app)
    app.mount("/static", StaticFiles(directory=PACKAGE / "core" / "static"), name="static")
    if settings.mode in (Mode.DEMO, Mode.DEV):  # the demo departments, calling the gateway at its public URL
        app.state.departments = create_departments(settings.data_dir, settings.public_url)
        app.state.eproof.witness_files = Path(settings.data_dir) / "witness"  # the demo's partner witness
        app.mount("/demo", app.state.departments, name="demo")
    app.include_router(core_routes.router)
    app.include_router(portal_views.router)
    app.include_router(identity_views.router)
    app.include_router(staff_views.router)
    app.include_router(oidc_api.router)
    app.include_router(operator_api.router)
    app.include_router(exchange_api.router)
    app.include_router(exchange_views.router)
    app.include_router(eproof_api.router)
    app.include_router(eproof_views.router)
    app.include_router(oidc_views.endpoint_router)
    app.include_router(oidc_views.router)
    app.add_middleware(oidc_api.TokenFastPath, application=app)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_form_bytes,
        larger_bodies={"/verify": eproof_views.MAX_UPLOAD + 1024 * 1024},  # a photo of a code, and the form
        hsts=public.scheme == "https",
        observe=metrics.observe,
    )
    if hosts.applies_to(settings.public_url):
        app.add_middleware(LoopbackRedirectMiddleware, public_url=settings.public_url)
    return app


def _install_guard_handlers(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if wants_html(request) or request.method != "GET":
            return RedirectResponse(exc.location, status_code=303)
        return problem_response(401, "Unauthorized", "Sign in first.", headers={"WWW-Authenticate": "Session"})

    @app.exception_handler(SetupRequired)
    async def _setup(request: Request, exc: SetupRequired) -> Response:
        return RedirectResponse("/account/setup", status_code=303)

    @app.exception_handler(RoleRequired)
    async def _role(request: Request, exc: RoleRequired) -> Response:
        return await templates_of(request).render(request, "error.html", {"status": 403}, status_code=403)

    @app.exception_handler(CsrfFailure)
    async def _csrf(request: Request, exc: CsrfFailure) -> Response:
        if not wants_html(request):
            # The passkey script shows this detail on the page, so it is in the page's language.
            detail = translator_of(request).gettext(CSRF_EXPLANATION)
            return problem_response(403, "Forbidden", detail, type_="urn:bauhinia:problem:csrf")
        return await templates_of(request).render(request, "csrf.html", {"status": 403}, status_code=403)


WITNESS_INTERVAL = 30.0


def _start_demo_witness(application: FastAPI, settings: Settings) -> asyncio.Task[None] | None:
    """In demo and dev mode, the demo's partner witness cosigns the log's checkpoints every half minute."""
    departments: Departments | None = getattr(application.state, "departments", None)
    if departments is None:
        return None
    witness = PartnerWitness(settings.data_dir, settings.public_url, departments.client())

    async def watch() -> None:
        await asyncio.sleep(2)  # the server is listening by then
        while True:
            try:
                await witness.cosign_latest()
            except Exception as exc:  # a demo helper: it says why, and tries again later
                structlog.get_logger().warning("demo witness did not cosign", error=str(exc))
            await asyncio.sleep(WITNESS_INTERVAL)

    return asyncio.create_task(watch(), name="demo-witness")
