"""Sign-ins per second on one core, as ratios to the cryptography a sign-in cannot avoid.

A passkey sign-in's unavoidable cost is one ECDSA P-256 verification; a password
sign-in's is one argon2id verification with the platform's parameters. Both
baselines are measured in the same run, in rounds interleaved with the sign-ins,
so that a shared machine's drift moves both sides of each ratio alike.

Sign-ins go through the real HTTP routes of ``create_app``, in process
(``httpx.ASGITransport``), against a freshly migrated database: the embedded
SQLite default, or PostgreSQL when ``BAUHINIA_BENCH_DATABASE_URL`` names a
database whose name contains "bench" (its ``public`` schema is dropped first).

- passkey: ``POST /signin/passkey/options``, the soft authenticator signs (not
  timed: that is the phone's work), ``POST /signin/passkey``;
- password: ``POST /signin`` for a resident without an authenticator app, so
  one request completes the sign-in.

Each sign-in starts in a fresh cookie jar with ``GET /signin`` for its CSRF token,
as a browser would; the page is timed separately and shown on its own row.

Run: ``.venv/bin/python bench/run.py`` (or ``.venv/bin/python -m bench.signin``);
``--profile passkey`` or ``--profile password`` then prints where the time goes
(``bench/run.py signin --profile passkey``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import inspect
import io
import json
import os
import re
import secrets
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

import httpx
import uvloop
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.types import Receive, Scope, Send
from tests.helpers import TestResident, make_resident
from tests.softauthn import SoftAuthenticator
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.structs import UserVerificationRequirement

from bauhinia.app import create_app
from bauhinia.identity.passwords import HASHER
from bauhinia.identity.service import IdentityService
from bauhinia.migrate import upgrade
from bauhinia.settings import Mode, Settings

PUBLIC_URL = "https://bauhinia.test"
RP_ID = "bauhinia.test"
CLIENT = ("203.0.113.7", 50000)
DATABASE_ENV = "BAUHINIA_BENCH_DATABASE_URL"
META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')

# Fixed work: ROUNDS rounds, each measuring every row once; a warm-up before the first.
ROUNDS = 3
RESIDENTS = 20
PASSKEY_SIGN_INS = 200
PASSWORD_SIGN_INS = 25
ECDSA_VERIFIES = 6000
LIBRARY_CHECKS = 2000
ARGON2_VERIFIES = 25
FLOOR_REQUESTS = 500
PROFILED_SIGN_INS = {"passkey": 400, "password": 60}


class BenchError(RuntimeError):
    """A sign-in did not complete: the figures would be meaningless."""


@dataclass
class Span:
    """Wall-clock seconds, and CPU seconds of the whole process (all its threads, on its one core)."""

    wall: float = 0.0
    cpu: float = 0.0


@contextlib.contextmanager
def timing(span: Span) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        span.wall += time.perf_counter() - wall
        span.cpu += time.process_time() - cpu


@dataclass
class Tally:
    """Operations and the time they took, per round."""

    label: str
    rounds: list[tuple[int, Span]] = field(default_factory=list)

    def add(self, count: int, span: Span) -> None:
        self.rounds.append((count, span))

    @property
    def count(self) -> int:
        return sum(c for c, _ in self.rounds)

    @property
    def wall(self) -> float:
        return sum(s.wall for _, s in self.rounds)

    @property
    def cpu(self) -> float:
        return sum(s.cpu for _, s in self.rounds)

    @property
    def rate(self) -> float:
        return self.count / self.wall

    @property
    def micros(self) -> float:
        return 1e6 * self.wall / self.count

    @property
    def cpu_micros(self) -> float:
        return 1e6 * self.cpu / self.count

    def round_rates(self) -> list[float]:
        return [c / s.wall for c, s in self.rounds]


@dataclass
class Results:
    database: str
    ecdsa: Tally = field(default_factory=lambda: Tally("ECDSA P-256 verify (cryptography)"))
    library: Tally = field(default_factory=lambda: Tally("assertion check (py_webauthn, whole)"))
    passkey: Tally = field(default_factory=lambda: Tally("passkey sign-in (options + assertion)"))
    passkey_options: Tally = field(default_factory=lambda: Tally("  POST /signin/passkey/options"))
    passkey_assertion: Tally = field(default_factory=lambda: Tally("  POST /signin/passkey"))
    argon2: Tally = field(default_factory=lambda: Tally("argon2id verify (m=19 MiB, t=2, p=1)"))
    password: Tally = field(default_factory=lambda: Tally("password sign-in (POST /signin)"))
    page: Tally = field(default_factory=lambda: Tally("GET /signin (page, new session)"))
    harness: Tally = field(default_factory=lambda: Tally("harness floor (bare ASGI app)"))
    healthz: Tally = field(default_factory=lambda: Tally("framework floor (GET /healthz)"))
    statements: dict[str, tuple[float, float]] = field(default_factory=dict)
    profile: str = ""


class Meter:
    """A rich progress bar refreshed by hand, between timed sections, so it never runs inside one."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = 0.0

    def task(self, description: str, total: int) -> TaskID:
        return self.progress.add_task(description, total=total)

    def tick(self, task: TaskID, n: int = 1) -> None:
        self.progress.advance(task, n)
        now = time.perf_counter()
        if now - self.last > 0.1:
            self.progress.refresh()
            self.last = now


# --- the machine ----------------------------------------------------------------------------------


def pin_to_one_core() -> str:
    """Pin this process (and the threads it starts later) to core 0."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
        return "pinned to core 0"
    return "not pinned (no sched_setaffinity here)"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


# --- baselines ------------------------------------------------------------------------------------


def ecdsa_verifies(span: Span, n: int) -> None:
    """n bare ECDSA P-256 verifications of a WebAuthn-sized message."""
    key = ec.generate_private_key(ec.SECP256R1())
    public, algorithm = key.public_key(), ec.ECDSA(hashes.SHA256())
    data = os.urandom(37 + 32)  # authenticator data || SHA-256(clientDataJSON)
    signature = key.sign(data, algorithm)
    with timing(span):
        for _ in range(n):
            public.verify(signature, data, algorithm)


@dataclass(frozen=True)
class LibraryCase:
    response: dict[str, Any]
    challenge: bytes
    public_key: bytes


def library_case() -> LibraryCase:
    """One registered credential and one assertion, to time py_webauthn's whole check on its own."""
    authenticator = SoftAuthenticator()
    registration = generate_registration_options(rp_id=RP_ID, rp_name="Bench", user_name="bench")
    created = authenticator.create(json.loads(options_to_json(registration)), PUBLIC_URL)
    registered = verify_registration_response(
        credential=created,
        expected_challenge=registration.challenge,
        expected_rp_id=RP_ID,
        expected_origin=PUBLIC_URL,
    )
    options = generate_authentication_options(rp_id=RP_ID, user_verification=UserVerificationRequirement.REQUIRED)
    response = authenticator.get(json.loads(options_to_json(options)), PUBLIC_URL)
    return LibraryCase(response, options.challenge, registered.credential_public_key)


def library_checks(span: Span, case: LibraryCase, n: int) -> None:
    with timing(span):
        for _ in range(n):
            verify_authentication_response(
                credential=case.response,
                expected_challenge=case.challenge,
                expected_rp_id=RP_ID,
                expected_origin=PUBLIC_URL,
                credential_public_key=case.public_key,
                credential_current_sign_count=0,
                require_user_verification=True,
            )


def argon2_verifies(span: Span, stored_hash: str, password: str, n: int) -> None:
    """n argon2id verifications with the platform's hasher, as the platform calls it (minus the thread)."""
    with timing(span):
        for _ in range(n):
            HASHER.verify(stored_hash, password)


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The least an ASGI app can do: what the in-process harness costs per request."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def timed_gets(span: Span, http: httpx.AsyncClient, path: str, n: int) -> None:
    with timing(span):
        for _ in range(n):
            response = await http.get(path)
            if response.status_code != 200:
                raise BenchError(f"GET {path} answered {response.status_code}")


# --- the platform ---------------------------------------------------------------------------------


async def reset_postgres(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


def prepare_database(directory: Path) -> tuple[str, str]:
    """A freshly migrated database, and how to describe it."""
    url = os.environ.get(DATABASE_ENV, "")
    if not url:
        url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        label = "SQLite (WAL), temporary file"
    else:
        parsed = make_url(url)
        if "bench" not in (parsed.database or ""):
            raise SystemExit(f"{DATABASE_ENV} must name a database whose name contains 'bench': it is wiped")
        asyncio.run(reset_postgres(url))
        label = f"PostgreSQL ({parsed.drivername}), database {parsed.database} on {parsed.host}"
    upgrade(url)
    return url, label


def make_app(url: str, directory: Path, log: io.TextIOBase) -> FastAPI:
    """The app as production runs it, access logs included (written to a file, not the terminal)."""
    settings = Settings(
        mode=Mode.DEV,
        database_url=url,
        data_dir=directory,
        public_url=PUBLIC_URL,
        secret_key=secrets.token_urlsafe(48),
        log_level="INFO",
    )
    with contextlib.redirect_stderr(log):
        return create_app(settings)


@dataclass
class PasskeyHolder:
    resident: TestResident
    authenticator: SoftAuthenticator


async def seed(app: FastAPI) -> tuple[list[TestResident], list[PasskeyHolder]]:
    """Residents with a password only, and residents with a passkey on their own soft authenticator."""
    service: IdentityService = app.state.identity
    with_password = [await make_resident(app, with_totp=False) for _ in range(RESIDENTS)]
    with_passkey = []
    for _ in range(RESIDENTS):
        who = await make_resident(app, with_totp=False)
        authenticator = SoftAuthenticator(backup_eligible=True, backed_up=True)
        async with app.state.sessionmaker() as db:
            resident = await service.resident(db, who.id)
            assert resident is not None
            options, challenge = service.passkey_registration_options(resident)
            created = authenticator.create(json.loads(options), PUBLIC_URL)
            await service.add_passkey(db, who.id, created, challenge, "Bench passkey")
        with_passkey.append(PasskeyHolder(who, authenticator))
    return with_password, with_passkey


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=CLIENT),
        base_url=PUBLIC_URL,
        headers={"accept": "text/html"},
        follow_redirects=False,
    )


async def fresh_csrf_token(http: httpx.AsyncClient, page: Span) -> str:
    """A new cookie jar and the sign-in page, as a browser arriving; returns the page's CSRF token."""
    http.cookies.clear()
    with timing(page):
        response = await http.get("/signin")
    match = META_CSRF.search(response.text)
    if response.status_code != 200 or match is None:
        raise BenchError(f"GET /signin answered {response.status_code} without a CSRF token")
    return match.group(1)


async def passkey_sign_in(
    http: httpx.AsyncClient, holder: PasskeyHolder, page: Span, options_call: Span, assertion_call: Span
) -> None:
    """One usernameless passkey sign-in. The authenticator's signing is the phone's work: not timed."""
    token = await fresh_csrf_token(http, page)
    headers = {"x-csrf-token": token, "accept": "application/json"}
    with timing(options_call):
        options = await http.post("/signin/passkey/options", headers=headers)
    if options.status_code != 200:
        raise BenchError(f"POST /signin/passkey/options answered {options.status_code}: {options.text[:200]}")
    assertion = holder.authenticator.get(options.json(), PUBLIC_URL)
    with timing(assertion_call):
        done = await http.post("/signin/passkey", json=assertion, headers=headers)
    if done.status_code != 200 or done.json() != {"redirect": "/account"}:
        raise BenchError(f"POST /signin/passkey answered {done.status_code}: {done.text[:200]}")


async def password_sign_in(http: httpx.AsyncClient, who: TestResident, page: Span, post: Span) -> None:
    """One password sign-in that completes in one POST (the resident has no authenticator app)."""
    token = await fresh_csrf_token(http, page)
    with timing(post):
        done = await http.post("/signin", data={"email": who.email, "password": who.password, "csrf_token": token})
    if done.status_code != 303 or done.headers.get("location") != "/account":
        raise BenchError(f"POST /signin answered {done.status_code} to {done.headers.get('location')}")


async def run(url: str, directory: Path, database: str, console: Console, profile: str | None) -> Results:
    results = Results(database)
    log_path = directory / "bench.log"
    log = log_path.open("w")
    app = make_app(url, directory, log)
    if app.state.settings.is_sqlite:
        results.database += f", synchronous={app.state.settings.sqlite_synchronous}"
    try:
        with console.status("Seeding residents and passkeys…"):
            with_password, with_passkey = await seed(app)
        stored_hash = HASHER.hash(with_password[0].password)
        case = library_case()
        passkey_holders, password_holders = cycle(with_passkey), cycle(with_password)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        async with client_for(app) as http, client_for(bare_asgi) as bare:
            # Warm-up: imports, template compilation, statement caches, connection pool.
            scratch = Span()
            for _ in range(20):
                await passkey_sign_in(http, next(passkey_holders), scratch, scratch, scratch)
            for _ in range(3):
                await password_sign_in(http, next(password_holders), scratch, scratch)
            await timed_gets(scratch, bare, "/", 50)
            await timed_gets(scratch, http, "/healthz", 50)
            ecdsa_verifies(scratch, 500)
            library_checks(scratch, case, 100)
            argon2_verifies(scratch, stored_hash, with_password[0].password, 2)

            with Progress(*columns, console=console, auto_refresh=False) as progress:
                meter = Meter(progress)
                tasks = {
                    "ecdsa": meter.task("ECDSA P-256 verify", ROUNDS * ECDSA_VERIFIES),
                    "library": meter.task("py_webauthn assertion check", ROUNDS * LIBRARY_CHECKS),
                    "passkey": meter.task("passkey sign-ins", ROUNDS * PASSKEY_SIGN_INS),
                    "argon2": meter.task("argon2id verify", ROUNDS * ARGON2_VERIFIES),
                    "password": meter.task("password sign-ins", ROUNDS * PASSWORD_SIGN_INS),
                    "floor": meter.task("harness and framework floors", ROUNDS * 2 * FLOOR_REQUESTS),
                }
                for _ in range(ROUNDS):
                    await measure_round(
                        results,
                        meter,
                        tasks,
                        http,
                        bare,
                        case,
                        stored_hash,
                        with_password[0].password,
                        passkey_holders,
                        password_holders,
                    )
            results.statements = await count_statements(app, http, passkey_holders, password_holders)
            if profile:
                results.profile = await profiled(
                    profile, http, passkey_holders, password_holders, PROFILED_SIGN_INS[profile]
                )
    except Exception:
        log.flush()
        console.print("[red]The benchmark stopped; the platform's last log lines:[/red]")
        console.print("\n".join(log_path.read_text().splitlines()[-20:]), markup=False, highlight=False)
        raise
    finally:
        await app.state.engine.dispose()
        log.close()
    return results


async def measure_round(
    results: Results,
    meter: Meter,
    tasks: dict[str, TaskID],
    http: httpx.AsyncClient,
    bare: httpx.AsyncClient,
    case: LibraryCase,
    stored_hash: str,
    password: str,
    passkey_holders: Iterator[PasskeyHolder],
    password_holders: Iterator[TestResident],
) -> None:
    chunk = 500
    span = Span()
    for done in range(0, ECDSA_VERIFIES, chunk):
        n = min(chunk, ECDSA_VERIFIES - done)
        ecdsa_verifies(span, n)
        meter.tick(tasks["ecdsa"], n)
    results.ecdsa.add(ECDSA_VERIFIES, span)

    span = Span()
    for done in range(0, LIBRARY_CHECKS, chunk):
        n = min(chunk, LIBRARY_CHECKS - done)
        library_checks(span, case, n)
        meter.tick(tasks["library"], n)
    results.library.add(LIBRARY_CHECKS, span)

    page, options_call, assertion_call = Span(), Span(), Span()
    for _ in range(PASSKEY_SIGN_INS):
        await passkey_sign_in(http, next(passkey_holders), page, options_call, assertion_call)
        meter.tick(tasks["passkey"])
    both = Span(options_call.wall + assertion_call.wall, options_call.cpu + assertion_call.cpu)
    results.passkey.add(PASSKEY_SIGN_INS, both)
    results.passkey_options.add(PASSKEY_SIGN_INS, options_call)
    results.passkey_assertion.add(PASSKEY_SIGN_INS, assertion_call)
    results.page.add(PASSKEY_SIGN_INS, page)

    span = Span()
    for _ in range(ARGON2_VERIFIES):
        argon2_verifies(span, stored_hash, password, 1)
        meter.tick(tasks["argon2"])
    results.argon2.add(ARGON2_VERIFIES, span)

    page, span = Span(), Span()
    for _ in range(PASSWORD_SIGN_INS):
        await password_sign_in(http, next(password_holders), page, span)
        meter.tick(tasks["password"])
    results.password.add(PASSWORD_SIGN_INS, span)
    results.page.add(PASSWORD_SIGN_INS, page)

    span = Span()
    await timed_gets(span, bare, "/", FLOOR_REQUESTS)
    results.harness.add(FLOOR_REQUESTS, span)
    meter.tick(tasks["floor"], FLOOR_REQUESTS)
    span = Span()
    await timed_gets(span, http, "/healthz", FLOOR_REQUESTS)
    results.healthz.add(FLOOR_REQUESTS, span)
    meter.tick(tasks["floor"], FLOOR_REQUESTS)


async def count_statements(
    app: FastAPI,
    http: httpx.AsyncClient,
    passkey_holders: Iterator[PasskeyHolder],
    password_holders: Iterator[TestResident],
) -> dict[str, tuple[float, float]]:
    """SQL statements and commits per request, counted outside the timed rounds."""
    counts = {"statements": 0, "commits": 0}

    def statement(*_: object) -> None:
        counts["statements"] += 1

    def commit(*_: object) -> None:
        counts["commits"] += 1

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    n, scratch, found = 10, Span(), {}
    try:
        for kind in ("page", "passkey", "password"):
            counts.update(statements=0, commits=0)
            for _ in range(n):
                if kind == "page":
                    await fresh_csrf_token(http, scratch)
                elif kind == "passkey":
                    await passkey_sign_in(http, next(passkey_holders), scratch, scratch, scratch)
                else:
                    await password_sign_in(http, next(password_holders), scratch, scratch)
            found[kind] = (counts["statements"] / n, counts["commits"] / n)
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)
    page = found["page"]
    # The sign-ins above each began with the page: report the sign-in's own requests.
    return {
        "GET /signin": page,
        "passkey sign-in": (found["passkey"][0] - page[0], found["passkey"][1] - page[1]),
        "password sign-in": (found["password"][0] - page[0], found["password"][1] - page[1]),
    }


# Where a sign-in's time goes, in the platform's own terms: these seams are wrapped and timed
# (self time: a seam's nested seams are subtracted). A seam that no longer exists is skipped.
SEAMS = (
    ("sqlalchemy.ext.asyncio:AsyncSession", "commit", "database: commit (flush + COMMIT)"),
    ("sqlalchemy.ext.asyncio:AsyncSession", "execute", "database: execute"),
    ("sqlalchemy.ext.asyncio:AsyncSession", "scalar", "database: scalar"),
    ("sqlalchemy.ext.asyncio:AsyncSession", "get", "database: get by primary key"),
    ("sqlalchemy.ext.asyncio:AsyncSession", "flush", "database: flush"),
    ("sqlalchemy.ext.asyncio:AsyncSession", "delete", "database: delete"),
    ("bauhinia.core.sessions:SessionManager", "load", "browser session: load"),
    ("bauhinia.core.sessions:SessionManager", "ensure", "browser session: ensure"),
    ("bauhinia.core.sessions:SessionManager", "start", "browser session: start (rotate)"),
    ("bauhinia.core.sessions:SessionManager", "claim", "browser session: claim the challenge (row lock)"),
    ("bauhinia.core.sessions:SessionManager", "write_state", "browser session: write state"),
    ("bauhinia.core.audit", "record", "audit log: record"),
    ("bauhinia.identity.throttle", "locked_until", "throttle: lookup"),
    ("bauhinia.identity.throttle", "lookup", "throttle: lookup (unknown passkey)"),
    ("bauhinia.identity.throttle", "clear", "throttle: clear"),
    ("bauhinia.identity.passkeys", "authentication_options", "passkey: make options (py_webauthn)"),
    ("bauhinia.identity.passkeys", "verify_assertion", "passkey: verify assertion (py_webauthn)"),
    ("bauhinia.identity.passwords", "verify_password", "password: argon2id verify"),
    ("bauhinia.core.web:Templates", "render", "templates: render"),
    ("bauhinia.identity.service:IdentityService", "passkey_sign_in", "identity service: passkey_sign_in's own code"),
    ("bauhinia.identity.service:IdentityService", "sign_in_with_password", "identity service: password's own code"),
)


class SeamTimer:
    """Times calls through the SEAMS while installed; only for sequential requests (one stack)."""

    def __init__(self) -> None:
        self.self_seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self.stack: list[list[float]] = []  # [started, seconds spent in nested seams]
        self.undo: list[Callable[[], None]] = []

    def _enter(self) -> None:
        self.stack.append([time.perf_counter(), 0.0])

    def _exit(self, label: str) -> None:
        started, nested = self.stack.pop()
        elapsed = time.perf_counter() - started
        self.self_seconds[label] += elapsed - nested
        self.calls[label] += 1
        if self.stack:
            self.stack[-1][1] += elapsed

    def _wrap(self, original: Callable[..., Any], label: str) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                self._enter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self._exit(label)

            return timed_async

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._enter()
            try:
                return original(*args, **kwargs)
            finally:
                self._exit(label)

        return timed

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        for where, name, label in SEAMS:
            module_name, _, class_name = where.partition(":")
            owner: Any = importlib.import_module(module_name)
            owner = getattr(owner, class_name, None) if class_name else owner
            original = getattr(owner, name, None)
            if owner is None or not callable(original):
                continue
            own = name in vars(owner)
            setattr(owner, name, self._wrap(original, label))
            self.undo.append(
                functools.partial(setattr, owner, name, original) if own else functools.partial(delattr, owner, name)
            )
        try:
            yield
        finally:
            while self.undo:
                self.undo.pop()()


async def profiled(
    kind: str,
    http: httpx.AsyncClient,
    passkey_holders: Iterator[PasskeyHolder],
    password_holders: Iterator[TestResident],
    n: int,
) -> str:
    """n more sign-ins with the seams timed: where the platform's time goes, per sign-in (page included)."""
    page, first, last = Span(), Span(), Span()
    timer = SeamTimer()
    with timer.installed():
        for _ in range(n):
            if kind == "passkey":
                await passkey_sign_in(http, next(passkey_holders), page, first, last)
            else:
                await password_sign_in(http, next(password_holders), page, last)
    total = page.wall + first.wall + last.wall
    lines = [
        f"\nWhere a {kind} sign-in's time goes (GET /signin included), {n} sign-ins with timed seams "
        f"(the timing adds a little): {1e6 * total / n:,.0f} µs each",
        "      µs  calls  seam (self time)",
    ]
    for label, seconds in sorted(timer.self_seconds.items(), key=lambda item: -item[1]):
        lines.append(f"{1e6 * seconds / n:8,.0f}  {timer.calls[label] / n:5.1f}  {label}")
    rest = total - sum(timer.self_seconds.values())
    lines.append(f"{1e6 * rest / n:8,.0f}         the rest: framework, middleware, views, the in-process harness")
    return "\n".join(lines)


# --- the report -----------------------------------------------------------------------------------


def spread(tally: Tally, baseline: Tally) -> str:
    ratios = [a / b for a, b in zip(tally.round_rates(), baseline.round_rates(), strict=True)]
    return f"{min(ratios):.3f}–{max(ratios):.3f}"


def report(console: Console, results: Results, pinned: str) -> None:
    console.print(f"\n[bold]Sign-in[/bold] — {results.database}; {cpu_model()}, nproc {os.cpu_count()}, {pinned}")
    table = Table(show_header=True, header_style="bold")
    table.add_column("measurement")
    table.add_column("n", justify="right")
    table.add_column("per second", justify="right")
    table.add_column("µs each", justify="right")
    table.add_column("CPU µs each", justify="right")
    for tally in (
        results.ecdsa,
        results.library,
        results.passkey,
        results.passkey_options,
        results.passkey_assertion,
        results.argon2,
        results.password,
        results.page,
        results.harness,
        results.healthz,
    ):
        table.add_row(
            tally.label, str(tally.count), f"{tally.rate:,.1f}", f"{tally.micros:,.0f}", f"{tally.cpu_micros:,.0f}"
        )
    console.print(table)
    if results.statements:
        console.print(
            "SQL per request, counted apart from the timed rounds: "
            + "; ".join(f"{k}: {st:.0f} statements, {c:.0f} commits" for k, (st, c) in results.statements.items())
            + " (on SQLite each transaction adds a BEGIN IMMEDIATE statement)."
        )

    passkey_ratio = results.passkey.rate / results.ecdsa.rate
    overhead = results.passkey.micros - results.ecdsa.micros
    library_overhead = results.library.micros - results.ecdsa.micros
    harness = 2 * results.harness.micros
    password_ratio = results.password.rate / results.argon2.rate
    with_page = 1e6 / (results.password.micros + results.page.micros)
    console.print(
        f"Passkey: {results.passkey.rate:,.1f} sign-ins/s against {results.ecdsa.rate:,.0f} ECDSA verifies/s: "
        f"ratio {passkey_ratio:.4f} (rounds {spread(results.passkey, results.ecdsa)}); "
        f"platform overhead {overhead:,.0f} µs per sign-in, of which "
        f"{results.passkey.micros - results.passkey.cpu_micros:,.0f} µs off the CPU (waiting on the database); "
        f"py_webauthn's own share {library_overhead:,.0f} µs, "
        f"the in-process harness's ~{harness:,.0f} µs for two requests. "
        f"Counting the sign-in page too: {1e6 / (results.passkey.micros + results.page.micros):,.1f}/s."
    )
    verdict = "meets" if password_ratio >= 0.9 else "misses"
    console.print(
        f"Password: {results.password.rate:,.2f} sign-ins/s against {results.argon2.rate:,.2f} argon2id verifies/s: "
        f"ratio {password_ratio:.3f} (rounds {spread(results.password, results.argon2)}), {verdict} the goal of 0.9; "
        f"overhead {results.password.micros - results.argon2.micros:,.0f} µs per sign-in, of which "
        f"{results.password.micros - results.password.cpu_micros:,.0f} µs off the CPU. "
        f"Counting the sign-in page too: {with_page:,.2f}/s (ratio {with_page / results.argon2.rate:.3f}). "
        "Keycloak's published sizing: 15 password sign-ins/s per vCPU."
    )
    if results.profile:
        console.print(results.profile, markup=False, highlight=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--profile", choices=sorted(PROFILED_SIGN_INS), help="profile more sign-ins of this kind")
    args = parser.parse_args(argv)
    pinned = pin_to_one_core()
    console = Console(width=max(Console().width, 132))
    with tempfile.TemporaryDirectory(prefix="bauhinia-bench-") as tmp:
        directory = Path(tmp)
        url, database = prepare_database(directory)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            results = runner.run(run(url, directory, database, console, args.profile))
    report(console, results, pinned)
    return 0


if __name__ == "__main__":
    sys.exit(main())
