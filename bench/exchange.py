"""Complete data requests through the exchange gateway, against the same consumer calling the same providers directly.

A complete data request is what a consumer department's system does to get two items of one resident's
data from two providers (docs/exchange-protocol.md §4): the Housing Department's system asks for the
residential address (Immigration) and the driving licence (Transport).

- **gateway**: the SDK's ``ConsumerClient.fetch`` — DPoP-bound access token and a fresh DPoP proof,
  ``POST /api/exchange/data-requests`` to a real ``bauhinia serve``, which checks the token and the
  consent, counts the fetch, signs one forwarded request per provider, posts both at once, checks
  each signed answer, signs a receipt and commits the exchange record and its audit event before it
  answers; the consumer then verifies the receipt and both providers' signatures and decrypts both
  JWEs with its key.
- **direct** (the baseline): the same consumer process calling the same two providers itself, with the
  cryptography the protocol cannot do without: it signs each provider's request exactly as the gateway
  would (the gateway's own ``Signer`` and pairwise subjects, built in process on the same database, so
  the providers — which trust the gateway's JWKS — accept it), posts both at once, verifies each
  response's signature, ``aud``, ``request_id`` and ``request_hash``, and decrypts each JWE.

So the difference is the gateway: token and DPoP checks, the consent check and fetch count, routing,
the exchange record and audit event written durably, the receipt (and the consumer's DPoP proof and
receipt check).

Processes, pinned with ``taskset``: the gateway (``bauhinia serve``, dev mode, log level WARNING) alone
on core 0; the three demo providers (``bauhinia.demo.create_departments`` mounted at ``/demo``, in a
uvicorn process of their own started by this script) on core 1; the load generator (this process: one
uvloop event loop, C workers each doing complete requests back to back) on core 1 as well by default,
so that in both modes the providers and the load generator share the same core and the gateway has one
to itself (``--load-core`` moves it; docs/performance.md says why this placement). Everything listens
on 127.0.0.1.

Setup: a temporary data directory (removed at the end), a migrated SQLite database or, with
``BAUHINIA_BENCH_DATABASE_URL``, a PostgreSQL database whose name contains "bench" (created when
missing, its ``public`` schema dropped first), the demo residents, clients, members and providers'
records seeded in process, and one ``period`` consent per worker for the address and the licence,
requested through the gateway with the SDK and approved through the service for
chan.taiman@demo.bauhinia.hk (the protocol caps a consent at 10,000 fetches; a worker stops before its
consent runs out). The providers' registered ``data_endpoint`` is pointed at their process.

Measured, for each mode: C workers for N seconds after a warm-up, in rounds that alternate the modes,
and one worker alone (latency without queueing). Every request must deliver both items: anything else
is an error, and a run with errors exits 1. The gateway's stored exchange records are counted at the
end: one per answered request. The CPU each process used is shown (in cores), and other processes'
CPU flags a disturbed run.

Run: ``.venv/bin/python bench/exchange.py [--seconds N] [--warmup N] [--concurrency C] [--rounds R]
[--load-core 0|1|any] [--profile]`` (``make bench-exchange``). ``--profile`` adds one gateway round with
py-spy (``PY_SPY`` or on the PATH) sampling the gateway, the providers and the load generator, and prints
where their time goes; that round's figures are not in the comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
import uvloop
from fastapi import FastAPI
from joserfc.jwk import ECKey, KeySet
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

# Run as a script, only bench/ is on the path; bench.signin and its imports need the root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bauhinia.app import create_app
from bauhinia.core.audit import AuditEvent
from bauhinia.demo import create_departments
from bauhinia.exchange.demo import register_demo_members, write_department_records
from bauhinia.exchange.models import Consent, ExchangeRecord, MemberSystem
from bauhinia.exchange.schemas import member_of
from bauhinia.migrate import upgrade
from bauhinia.oidc.demo_clients import register_demo_clients
from bauhinia.sdk import ConsumerClient, SystemCredentials, jose
from bauhinia.seed import seed_demo
from bauhinia.settings import Mode, Settings
from bench.oidc_token import create_database, free_port, stop, tail
from bench.signin import DATABASE_ENV, cpu_model, reset_postgres

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
GATEWAY_CORE, PROVIDERS_CORE, DEFAULT_LOAD_CORE = 0, 1, "1"
SECRET_KEY = "bench-exchange-fixed-secret-key-0123456789abcdef"  # noqa: S105 — both processes derive the same keys
RESIDENT = "chan.taiman@demo.bauhinia.hk"
CONSUMER = "HK/GOV/HD/applications"
PURPOSE = "housing.public-rental-application"
ADDRESS, LICENCE = "immd.residential-address", "td.driving-licence"
ITEMS = (ADDRESS, LICENCE)
# The two providers concerned and their demo paths (bauhinia.demo.providers).
PROVIDERS = {"HK/GOV/IMMD/residency": "immigration", "HK/GOV/TD/licensing": "transport"}
# Bounds: the protocol's cap on one consent's fetches (a worker stops short of it), requests per run,
# one complete request's time, a server's start, the errors after which a run gives up.
MAX_FETCHES = 10_000
FETCH_MARGIN = 10
MAX_REQUESTS = 1_000_000
REQUEST_TIMEOUT = 15.0
START_TIMEOUT = 60.0
MAX_ERRORS = 100
MAX_SECONDS = 120.0
MAX_CONCURRENCY = 256
SERIAL_SECONDS = 3.0
# Other processes' CPU during a measured run, in cores, above which its figures are flagged.
DISTURBED = 0.10
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_exchange"

Mode_ = Literal["direct", "gateway"]


class BenchError(RuntimeError):
    """A server did not start, or the setup failed: no figures."""


# --- the providers' process ----------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def providers_app(data_dir: Path, gateway: str) -> Starlette:
    """The demo departments at /demo (as the platform mounts them in demo and dev modes), alone."""
    departments = create_departments(data_dir, gateway)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await departments.aclose()

    return Starlette(routes=[Route("/healthz", healthz), Mount("/demo", app=departments)], lifespan=lifespan)


def serve_providers(argv: list[str]) -> int:
    """``bench/exchange.py _providers DATA_DIR GATEWAY PORT``: uvicorn as ``bauhinia serve`` runs it
    (uvloop, httptools, no access log, start-up objects frozen out of the collector's reach)."""
    data_dir, gateway, port = Path(argv[0]), argv[1], int(argv[2])
    app = providers_app(data_dir, gateway)
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning", access_log=False
    )
    return 0


# --- processes -----------------------------------------------------------------------------------


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{base_url}: the server exited with {process.returncode}:\n{tail(log, 40)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"{base_url} did not answer /healthz within {START_TIMEOUT:.0f} s:\n{tail(log, 40)}")


@contextlib.contextmanager
def serving(command: list[str], core: int, env: Mapping[str, str], log: Path, base_url: str) -> Iterator[int]:
    """Runs a server pinned to ``core`` until the block ends; yields its process id. ``base_url``: where it
    answers /healthz (the gateway redirects a GET by address to its public URL, http://localhost:PORT)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["taskset", "-c", str(core), *command],
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until_healthy(process, base_url, log)
        yield process.pid
    finally:
        stop(process)


def server_env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BAUHINIA_")}
    env.update(
        BAUHINIA_MODE="dev",
        BAUHINIA_DATA_DIR=str(settings.data_dir),
        BAUHINIA_DATABASE_URL=settings.resolved_database_url,
        BAUHINIA_PUBLIC_URL=settings.public_url,
        BAUHINIA_SECRET_KEY=SECRET_KEY,
        BAUHINIA_LOG_LEVEL="WARNING",
        BAUHINIA_SQLITE_SYNCHRONOUS=settings.sqlite_synchronous,
    )
    return env


# --- CPU used by each process --------------------------------------------------------------------


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU seconds so far (all its threads)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seen = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            seen[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)  # utime + stime
    return seen


CPU_FIELDS = ("gateway", "providers", "load", "postgres", "other")


@dataclass(frozen=True)
class Cores:
    """CPU used during a measured run, in cores: ours, PostgreSQL's, and everything else's."""

    gateway: float
    providers: float
    load: float
    postgres: float
    other: float


@dataclass
class CpuWatch:
    gateway: int
    providers: int
    helpers: set[int] = field(default_factory=set)  # profilers: neither ours nor others'

    @contextlib.contextmanager
    def watching(self, into: list[Cores]) -> Iterator[None]:
        before, started = cpu_by_process(), time.monotonic()
        try:
            yield
        finally:
            after, elapsed = cpu_by_process(), time.monotonic() - started
            used: dict[str, float] = dict.fromkeys(CPU_FIELDS, 0.0)
            for pid, (name, cpu) in after.items():
                spent = max(0.0, cpu - before.get(pid, (name, 0.0))[1])
                if pid in self.helpers:
                    continue
                if pid == self.gateway:
                    used["gateway"] += spent
                elif pid == self.providers:
                    used["providers"] += spent
                elif pid == os.getpid():
                    used["load"] += spent
                elif name.startswith("postgres"):
                    used["postgres"] += spent
                else:
                    used["other"] += spent
            into.append(Cores(**{k: used[k] / elapsed for k in CPU_FIELDS}))


# --- setup ---------------------------------------------------------------------------------------


def prepare_database(directory: Path) -> tuple[str, str]:
    """A freshly migrated database, and how to describe it."""
    url = os.environ.get(DATABASE_ENV, "")
    if not url:
        url = f"sqlite+aiosqlite:///{directory / 'bauhinia.db'}"
        synchronous = os.environ.get("BAUHINIA_SQLITE_SYNCHRONOUS", "FULL")
        label = f"SQLite (WAL, synchronous={synchronous}), temporary file"
    else:
        parsed = make_url(url)
        if "bench" not in (parsed.database or ""):
            raise SystemExit(f"{DATABASE_ENV} must name a database whose name contains 'bench': it is wiped")
        label = asyncio.run(create_database(parsed))
        asyncio.run(reset_postgres(url))
        label = f"{label}, database {parsed.database}"
    upgrade(url)
    return url, label


async def seed(app: FastAPI, data_dir: Path, providers_url: str) -> str:
    """The demo registry, residents, clients and records; returns the resident's id."""
    state = app.state
    async with state.sessionmaker() as db:
        await seed_demo(db, state.identity, data_dir, date.today())
        await register_demo_clients(db, state.oidc, data_dir)
        await register_demo_members(db, state.exchange, data_dir)
        await write_department_records(db, state.exchange, data_dir)
        # Bench setup only: the providers answer from their own process, not from the gateway's /demo.
        for system_id, path in PROVIDERS.items():
            endpoint = f"{providers_url}/demo/{path}/exchange"
            await db.execute(update(MemberSystem).where(MemberSystem.id == system_id).values(data_endpoint=endpoint))
        await db.commit()
        resident = await state.identity.find_resident(db, RESIDENT)
        assert resident is not None, f"the seed has no {RESIDENT}"
        return str(resident.id)


async def approved_consents(
    app: FastAPI, consumer: ConsumerClient, resident_id: str, count: int, gateway_url: str
) -> list[str]:
    """``count`` period consents for both items, requested through the gateway and approved through the service
    (the review page has its own tests), as tests/integration/test_exchange_crash.py does."""
    ids = []
    for n in range(count):
        asked = await consumer.request_consent(
            purpose=PURPOSE,
            items=list(ITEMS),
            mode="period",
            valid_for=86_400,
            max_fetches=MAX_FETCHES,
            redirect_uri=f"{gateway_url}/demo/housing/consent-done",
            state=f"bench-{n}",
        )
        async with app.state.sessionmaker() as db:
            await app.state.exchange.consents.decide(
                db, asked.id, resident_id, approve=True, left_out=set(), today=date.today()
            )
        ids.append(asked.id)
    return ids


# --- the two ways of fetching --------------------------------------------------------------------


class Refused(Exception):
    """A complete request that did not deliver both items, with the reason."""


@dataclass(frozen=True)
class ProviderShare:
    system_id: str
    items: list[str]
    url: str
    keys: KeySet  # its registered signing keys


@dataclass(frozen=True)
class ConsentCopy:
    artefact: str
    resident_id: str


class DirectConsumer:
    """The consumer calling the providers itself, with the cryptography the protocol needs and nothing else."""

    def __init__(
        self,
        app: FastAPI,
        http: httpx.AsyncClient,
        encryption_key: ECKey,
        consumer_key: dict[str, Any],
        shares: list[ProviderShare],
        consents: dict[str, ConsentCopy],
    ) -> None:
        self.oidc = app.state.oidc
        self.forwarder = app.state.exchange.forwarder
        self.http = http
        self.encryption_key = encryption_key
        self.consumer_key = consumer_key
        self.shares = shares
        self.consents = consents

    @classmethod
    async def prepare(
        cls, app: FastAPI, http: httpx.AsyncClient, credentials: SystemCredentials, consent_ids: list[str]
    ) -> DirectConsumer:
        async with app.state.sessionmaker() as db:
            await app.state.oidc.keys.refresh(db)  # the gateway's current signing key, as it signs with
            consumer = await db.get(MemberSystem, CONSUMER)
            assert consumer is not None
            shares = []
            for system_id, items in ((ADDRESS_PROVIDER, [ADDRESS]), (LICENCE_PROVIDER, [LICENCE])):
                provider = await db.get(MemberSystem, system_id)
                assert provider is not None
                assert provider.data_endpoint is not None
                url = provider.data_endpoint.rstrip("/") + "/data-requests"
                shares.append(ProviderShare(system_id, items, url, jose.public_keys(provider.signing_jwks, "sig")))
            consents = {}
            for consent_id in consent_ids:
                row = await db.get(Consent, consent_id)
                assert row is not None
                assert row.artefact is not None
                assert row.resident_id is not None
                consents[consent_id] = ConsentCopy(row.artefact, row.resident_id)
            consumer_key = dict(consumer.encryption_jwks["keys"][0])
        return cls(
            app, http, credentials.encryption_key(), consumer_key, sorted(shares, key=lambda s: s.system_id), consents
        )

    def request_for(self, share: ProviderShare, consent: ConsentCopy, request_id: str, now: int) -> str:
        """The forwarded request, claim for claim as the gateway builds it (exchange/forwarding.py)."""
        claims = {
            "iss": self.oidc.issuer,
            "aud": share.system_id,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 60,
            "request_id": request_id,
            "consent": consent.artefact,
            "sub": self.forwarder.provider_subject(member_of(share.system_id), consent.resident_id),
            "items": share.items,
            "consumer": CONSUMER,
            "consumer_key": self.consumer_key,
        }
        signed: str = self.oidc.signer.sign(claims, typ=jose.REQUEST_TYP)
        return signed

    async def fetch(self, consent_id: str) -> None:
        consent = self.consents[consent_id]
        request_id, now = str(uuid.uuid4()), int(time.time())
        requests = [self.request_for(share, consent, request_id, now) for share in self.shares]
        answers = await asyncio.gather(
            *(self.http.post(share.url, json={"request": r}) for share, r in zip(self.shares, requests, strict=True))
        )
        released: set[str] = set()
        for share, request, answer in zip(self.shares, requests, answers, strict=True):
            released |= self.opened(share, request, request_id, answer)
        if released != set(ITEMS):
            raise Refused(f"released {sorted(released)}")

    def opened(self, share: ProviderShare, request: str, request_id: str, answer: httpx.Response) -> set[str]:
        """Every check ConsumerClient makes of a provider's answer, then the decryption."""
        if answer.status_code != 200:
            raise Refused(f"{share.system_id} answered HTTP {answer.status_code}: {answer.text[:200]}")
        response = answer.json().get("response")
        try:
            claims = jose.verify(response, share.keys, jose.RESPONSE_TYP)
            expected = {
                "iss": share.system_id,
                "aud": CONSUMER,
                "request_id": request_id,
                "request_hash": jose.request_hash(request),
                "status": "delivered",
            }
            for claim, value in expected.items():
                if claims.get(claim) != value:
                    raise Refused(f"{share.system_id}: wrong {claim}: {claims.get(claim)!r}")
            content = jose.decrypt(claims.get("data"), self.encryption_key)
        except jose.Invalid as exc:
            raise Refused(f"{share.system_id}: {exc}") from exc
        values = content.get("items")
        if content.get("request_id") != request_id or not isinstance(values, dict):
            raise Refused(f"{share.system_id}: the decrypted data is not this request's")
        if set(values) != set(claims.get("items") or []) or not set(values) <= set(share.items):
            raise Refused(f"{share.system_id}: released {sorted(values)}")
        return set(values)


ADDRESS_PROVIDER, LICENCE_PROVIDER = "HK/GOV/IMMD/residency", "HK/GOV/TD/licensing"


async def via_gateway(consumer: ConsumerClient, consent_id: str) -> None:
    result = await consumer.fetch(consent_id, list(ITEMS))
    if {o.status for o in result.outcomes} != {"delivered"} or set(result.values) != set(ITEMS):
        outcomes = [(o.provider, o.status, o.detail) for o in result.outcomes]
        raise Refused(f"outcomes {outcomes}, values {sorted(result.values)}")


# --- the load ------------------------------------------------------------------------------------


@dataclass
class Run:
    mode: Mode_
    phase: str  # "load" or "alone"
    concurrency: int
    latencies: list[float] = field(default_factory=list)  # seconds, of answered requests
    seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    capped: bool = False  # a worker stopped short of its consent's fetches
    cores: list[Cores] = field(default_factory=list)

    def add(self, other: Run) -> None:
        self.latencies += other.latencies
        self.seconds += other.seconds
        self.errors += other.errors
        self.capped |= other.capped
        self.cores += other.cores

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    def mean_cores(self) -> Cores | None:
        if not self.cores:
            return None
        n = len(self.cores)
        return Cores(*(sum(getattr(c, f) for c in self.cores) / n for f in CPU_FIELDS))


@dataclass
class Fetches:
    """Gateway fetches per consent, so that no worker spends its consent's last fetch."""

    used: Counter[str] = field(default_factory=Counter)
    answered: int = 0  # gateway requests that delivered: each must have left an exchange record

    def left(self, consent_id: str) -> bool:
        return self.used[consent_id] < MAX_FETCHES - FETCH_MARGIN


async def load(
    run: Run, fetch: Callable[[str], Awaitable[None]], consents: list[str], seconds: float, fetches: Fetches
) -> None:
    """``run.concurrency`` workers, one consent each, doing complete requests back to back for ``seconds``."""
    started = time.monotonic()
    deadline = started + seconds
    stop_all = False

    async def worker(consent_id: str) -> None:
        nonlocal stop_all
        while time.monotonic() < deadline and not stop_all:
            if run.mode == "gateway":
                if not fetches.left(consent_id):
                    run.capped = True
                    return
                fetches.used[consent_id] += 1
            begun = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    await fetch(consent_id)
            except Exception as exc:  # every failure is counted and shown; none stops the run
                run.errors[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1
                if run.error_count >= MAX_ERRORS:
                    stop_all = True
                continue
            run.latencies.append(time.perf_counter() - begun)
            if run.mode == "gateway":
                fetches.answered += 1
            if len(run.latencies) >= MAX_REQUESTS:
                stop_all = True

    await asyncio.gather(*(worker(consents[i % len(consents)]) for i in range(run.concurrency)))
    run.seconds = time.monotonic() - started


# --- profile -------------------------------------------------------------------------------------


SEAMS = (  # (where a frame's file is, what it is), first match wins
    ("sqlalchemy", "SQLAlchemy"),
    ("aiosqlite", "aiosqlite + sqlite3"),
    ("sqlite3", "aiosqlite + sqlite3"),
    ("asyncpg", "asyncpg"),
    ("httpcore", "httpx + httpcore (client)"),
    ("httpx", "httpx + httpcore (client)"),
    ("h11", "httpx + httpcore (client)"),
    ("anyio", "anyio"),
    ("joserfc", "joserfc"),
    ("cryptography", "cryptography"),
    ("uvicorn", "uvicorn + httptools (server)"),
    ("httptools", "uvicorn + httptools (server)"),
    ("fastapi", "FastAPI"),
    ("starlette", "Starlette"),
    ("pydantic", "pydantic"),
    ("structlog", "logging"),
    ("logging", "logging"),
    ("json", "json"),
    ("bauhinia/sdk", "bauhinia.sdk"),
    ("bauhinia/demo", "bauhinia.demo"),
    ("bauhinia/exchange", "bauhinia.exchange"),
    ("bauhinia/oidc", "bauhinia.oidc"),
    ("bauhinia/core", "bauhinia.core"),
    ("asyncio", "asyncio + uvloop (event loop, sockets)"),
    ("uvloop", "asyncio + uvloop (event loop, sockets)"),
    ("queue.py", "thread hand-offs (queue, threading)"),
    ("threading", "thread hand-offs (queue, threading)"),
    ("concurrent/futures", "thread hand-offs (queue, threading)"),
)


def seam_of(frame: str) -> str:
    for needle, seam in SEAMS:
        if f"/{needle}" in frame or frame.startswith(needle):
            return seam
    return "other"


def profile_summary(raw: Path, console: Console, title: str) -> None:
    """py-spy's raw output (collapsed stacks, ``frame;frame;… count``): self samples by seam and by function,
    and inclusive samples of the gateway's own steps."""
    self_by_seam: Counter[str] = Counter()
    self_by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count, frames = int(count_text), stack.split(";")
        total += count
        leaf = frames[-1]
        self_by_seam[seam_of(leaf.split("(", 1)[-1])] += count
        self_by_function[leaf] += count
        for name in {f.split(" (", 1)[0] + " (" + f.split(" (", 1)[-1].split(":")[0] for f in frames}:
            inclusive[name] += count
    if not total:
        console.print(f"[yellow]{title}: py-spy recorded nothing[/yellow]")
        return
    table = Table(title=f"{title}: {total:,} samples, self time by library", show_header=True, header_style="bold")
    table.add_column("where")
    table.add_column("share", justify="right")
    for seam, count in self_by_seam.most_common():
        table.add_row(seam, f"{count / total:.1%}")
    console.print(table)
    functions = Table(title=f"{title}: self time, top functions", show_header=True, header_style="bold")
    functions.add_column("function (file:line)")
    functions.add_column("share", justify="right")
    for function, count in self_by_function.most_common(25):
        functions.add_row(function[-110:], f"{count / total:.1%}")
    console.print(functions)
    steps = Table(title=f"{title}: inclusive time of Bauhinia's own functions", show_header=True, header_style="bold")
    steps.add_column("function (file)")
    steps.add_column("share", justify="right")
    own = [
        (name, count)
        for name, count in inclusive.most_common()
        if "bauhinia/" in name and not name.startswith("<module>")
    ]
    for function, count in own[:25]:
        steps.add_row(function[-110:], f"{count / total:.1%}")
    console.print(steps)


@contextlib.contextmanager
def sampling(
    py_spy: str, pids: dict[str, int], seconds: float, directory: Path, watch: CpuWatch
) -> Iterator[dict[str, Path]]:
    outputs = {name: directory / f"profile-{name}.txt" for name in pids}
    processes = [
        subprocess.Popen(
            [
                py_spy,
                "record",
                *("--pid", str(pid), "--duration", str(math.ceil(seconds)), "--rate", "200"),
                *("--format", "raw", "--output", str(outputs[name]), "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    watch.helpers |= {p.pid for p in processes}
    try:
        yield outputs
    finally:
        for process in processes:
            try:
                process.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the report ----------------------------------------------------------------------------------


def cores_text(cores: Cores | None) -> tuple[str, str, str, str, str]:
    if cores is None:
        return ("—",) * 5
    other = f"{cores.other:.0%}"
    return (
        f"{cores.gateway:.0%}",
        f"{cores.providers:.0%}",
        f"{cores.load:.0%}",
        f"{cores.postgres:.0%}",
        f"[yellow]{other}[/yellow]" if cores.other > DISTURBED else other,
    )


def results_table(runs: list[Run]) -> Table:
    table = Table(show_header=True, header_style="bold")
    columns = ("mode", "workers", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors")
    for column in (*columns, "gateway CPU", "providers CPU", "load CPU", "PostgreSQL CPU", "other CPU"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for run in runs:
        table.add_row(
            run.mode,
            str(run.concurrency),
            f"{run.requests:,}",
            f"{run.rate:,.0f}",
            f"{run.percentile(0.50):.2f}",
            f"{run.percentile(0.99):.2f}",
            f"{max(run.latencies, default=0) * 1000:.1f}",
            f"[red]{run.error_count:,}[/red]" if run.error_count else "0",
            *cores_text(run.mean_cores()),
        )
    return table


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}×" if ours and theirs else "—"


def ratios_table(pairs: list[tuple[Run, Run]]) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("gateway / direct")
    table.add_column("p50 latency (goal ≤ 2×)", justify="right")
    table.add_column("p99 latency (goal ≤ 2×)", justify="right")
    table.add_column("throughput", justify="right")
    for gateway, direct in pairs:
        table.add_row(
            f"{gateway.concurrency} worker{'s' if gateway.concurrency > 1 else ''}",
            ratio(gateway.percentile(0.5), direct.percentile(0.5)),
            ratio(gateway.percentile(0.99), direct.percentile(0.99)),
            ratio(gateway.rate, direct.rate),
        )
    return table


# --- main ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup: float
    rounds: int
    concurrency: int
    load_core: str
    profile: str | None  # py-spy's path


def pin_load_generator(load_core: str) -> None:
    """Before any thread starts: the threads this process makes later (the SQLite driver's) inherit it."""
    if load_core != "any":
        os.sched_setaffinity(0, {int(load_core)})


def check_cores(load_core: str) -> None:
    wanted = {GATEWAY_CORE, PROVIDERS_CORE} | ({int(load_core)} if load_core != "any" else set())
    if not wanted <= os.sched_getaffinity(0):
        raise SystemExit(f"This benchmark pins its processes to cores {sorted(wanted)}: not available here")


@dataclass(frozen=True)
class Measured:
    runs: list[Run]  # summed over the rounds: gateway and direct under load, then each alone
    rounds: list[Run]  # each measured round, and the profiled one last
    stored: int  # exchange records at the end
    audited: int  # their audit events
    answered: int  # gateway requests that delivered: the least that must be stored
    profiles: dict[str, Path]


async def measure(
    app: FastAPI,
    options: Options,
    gateway_url: str,
    resident_id: str,
    watch: CpuWatch,
    directory: Path,
    console: Console,
) -> Measured:
    limits = httpx.Limits(max_connections=options.concurrency + 16, max_keepalive_connections=options.concurrency + 16)
    credentials = SystemCredentials.load(directory / "members" / "HD-applications.json")
    async with (
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as gateway_http,
        httpx.AsyncClient(timeout=REQUEST_TIMEOUT, limits=limits) as direct_http,
        ConsumerClient(credentials, http=gateway_http) as consumer,
    ):
        consents = await approved_consents(app, consumer, resident_id, options.concurrency, gateway_url)
        baseline = await DirectConsumer.prepare(app, direct_http, credentials, consents)
        await app.state.engine.dispose()  # nothing of this process touches the database from here on
        fetches = Fetches()
        ways: dict[Mode_, Callable[[str], Awaitable[None]]] = {
            "gateway": lambda consent_id: via_gateway(consumer, consent_id),
            "direct": baseline.fetch,
        }
        for mode, fetch in ways.items():  # one of each, checked, before any load
            fetches.used[consents[0]] += mode == "gateway"
            await fetch(consents[0])
            fetches.answered += mode == "gateway"
        console.print(f"One complete request each way delivered {', '.join(ITEMS)}; warming up…")
        for mode, fetch in ways.items():
            warm = Run(mode, "warm-up", options.concurrency)
            await load(warm, fetch, consents, options.warmup, fetches)
            if warm.error_count:
                raise BenchError(f"{mode} warm-up: {warm.errors.most_common(3)}")
        totals = {
            (mode, phase): Run(mode, phase, options.concurrency if phase == "load" else 1)
            for phase in ("load", "alone")
            for mode in ("gateway", "direct")
        }
        per_round: list[Run] = []
        order: list[Mode_] = ["direct", "gateway"]
        for n in range(options.rounds):
            for mode in order if n % 2 == 0 else order[::-1]:  # ABBA: drift moves both alike
                run = Run(mode, "load", options.concurrency)
                with watch.watching(run.cores):
                    await load(run, ways[mode], consents, options.seconds / options.rounds, fetches)
                per_round.append(run)
                totals[(mode, "load")].add(run)
                console.print(
                    f"round {n + 1}, {mode}: {run.rate:,.0f} req/s, p50 {run.percentile(0.5):.2f} ms, "
                    f"p99 {run.percentile(0.99):.2f} ms, errors {run.error_count}"
                )
        for mode in order:
            run = Run(mode, "alone", 1)
            with watch.watching(run.cores):
                await load(run, ways[mode], consents, SERIAL_SECONDS, fetches)
            totals[(mode, "alone")].add(run)
        profiles: dict[str, Path] = {}
        if options.profile:
            pids = {"gateway": watch.gateway, "providers": watch.providers, "load generator": os.getpid()}
            seconds = max(5.0, options.seconds / options.rounds)
            with sampling(options.profile, pids, seconds, directory, watch) as profiles:
                run = Run("gateway", "profiled", options.concurrency)
                with watch.watching(run.cores):
                    await load(run, ways["gateway"], consents, seconds, fetches)
            console.print(
                f"profiled gateway round (not compared): {run.rate:,.0f} req/s, p50 {run.percentile(0.5):.2f} ms, "
                f"errors {run.error_count}"
            )
            per_round.append(run)
    stored, audited = await count_records(app)
    runs = [totals[(m, p)] for p in ("load", "alone") for m in ("gateway", "direct")]
    return Measured(runs, per_round, stored, audited, fetches.answered, profiles)


async def count_records(app: FastAPI) -> tuple[int, int]:
    async with app.state.sessionmaker() as db:
        stored = await db.scalar(
            select(func.count()).select_from(ExchangeRecord).where(ExchangeRecord.event == "data.requested")
        )
        audited = await db.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.event_type == "exchange.data_request")
        )
    await app.state.engine.dispose()
    return int(stored or 0), int(audited or 0)


def find_py_spy() -> str:
    found = os.environ.get("PY_SPY") or shutil.which("py-spy") or shutil.which("py-spy", path=str(VENV_BIN))
    if not found:
        raise SystemExit("--profile needs py-spy: set PY_SPY to its path (pip install py-spy in any virtualenv)")
    return found


def report(console: Console, measured: Measured, header: str) -> int:
    gateway_load, direct_load, gateway_alone, direct_alone = measured.runs
    console.print(f"\n[bold]Exchange gateway: complete data requests[/bold] — {header}")
    console.print(results_table(measured.runs))
    console.print(ratios_table([(gateway_load, direct_load), (gateway_alone, direct_alone)]))
    p50 = gateway_load.percentile(0.5) / direct_load.percentile(0.5) if direct_load.percentile(0.5) else math.inf
    p99 = gateway_load.percentile(0.99) / direct_load.percentile(0.99) if direct_load.percentile(0.99) else math.inf
    alone = gateway_alone.percentile(0.5) / direct_alone.percentile(0.5) if direct_alone.percentile(0.5) else math.inf
    verdict = "meets" if max(p50, p99) <= 2 else "misses"
    console.print(
        f"Goal: gateway latency ≤ 2× direct, under load: p50 {p50:.2f}×, p99 {p99:.2f}×, {verdict} it "
        f"(one worker alone: p50 {alone:.2f}×)."
    )
    verdict = "meets" if gateway_load.rate >= 1000 else "misses"
    console.print(
        f"Goal: ≥ 1,000 complete data requests/s: {gateway_load.rate:,.0f}/s with {gateway_load.concurrency} "
        f"workers, {verdict} it ({gateway_load.rate / 1000:.2f}× the goal)."
    )
    console.print(
        f"Stored: {measured.stored:,} exchange records and {measured.audited:,} audit events for "
        f"{measured.answered:,} delivered gateway requests."
    )
    status = 0
    disturbed = [r for r in measured.rounds if any(c.other > DISTURBED for c in r.cores)]
    if disturbed:
        console.print(
            f"[bold yellow]DISTURBED: other processes used more than {DISTURBED:.0%} of a core during "
            f"{len(disturbed)} of {len(measured.rounds)} rounds. Run again on a quiet machine.[/bold yellow]"
        )
    for run in measured.runs:
        if run.capped:
            console.print(
                f"[yellow]BOUNDED: {run.mode}, {run.concurrency} workers: a worker stopped short of its consent's "
                f"{MAX_FETCHES:,} fetches; fewer seconds were measured.[/yellow]"
            )
        if not run.requests:
            console.print(f"[bold red]NO ANSWERS: {run.mode}, {run.concurrency} workers.[/bold red]")
            status = 1
        if run.error_count:
            console.print(
                f"[bold red]ERRORS: {run.mode}, {run.concurrency} workers: {run.error_count:,} requests failed; "
                "its figures are not valid.[/bold red]"
            )
            for reason, count in run.errors.most_common(5):
                console.print(f"  {count:,} × {reason}", markup=False, highlight=False)
            status = 1
    if measured.stored < measured.answered or measured.audited < measured.answered:
        console.print("[bold red]RECORDS: fewer exchange records or audit events than delivered requests.[/bold red]")
        status = 1
    return status


def describe(options: Options, database: str) -> str:
    load = "unpinned" if options.load_core == "any" else f"core {options.load_core}"
    return (
        f"{cpu_model()}; gateway (bauhinia serve) on core {GATEWAY_CORE}, providers on core {PROVIDERS_CORE}, "
        f"load generator on {load}; {options.concurrency} workers, {options.rounds} rounds per mode of "
        f"{options.seconds / options.rounds:g} s after {options.warmup:g} s of warm-up, then one worker alone for "
        f"{SERIAL_SECONDS:g} s; {database}"
    )


def run_bench(options: Options, console: Console) -> int:
    check_cores(options.load_core)
    pin_load_generator(options.load_core)
    with tempfile.TemporaryDirectory(prefix="bauhinia-bench-exchange-") as tmp:
        directory = Path(tmp)
        url, database = prepare_database(directory)
        gateway_port, providers_port = free_port(), free_port()
        gateway_url, providers_url = f"http://localhost:{gateway_port}", f"http://127.0.0.1:{providers_port}"
        settings = Settings(
            mode=Mode.DEV,
            database_url=url,
            data_dir=directory,
            public_url=gateway_url,
            secret_key=SECRET_KEY,
            log_level="WARNING",
            sqlite_synchronous=os.environ.get("BAUHINIA_SQLITE_SYNCHRONOUS", "FULL"),
        )
        app = create_app(settings)
        env = server_env(settings)
        header = describe(options, database)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            console.print("Seeding the demo residents, clients, members and records…")
            resident_id = runner.run(seed(app, directory, providers_url))
            runner.run(app.state.engine.dispose())
            gateway_command = [str(VENV_BIN / "bauhinia"), "serve", "--host", "127.0.0.1", "--port", str(gateway_port)]
            providers_command = [sys.executable, str(Path(__file__).resolve()), "_providers", tmp, gateway_url]
            try:
                with (
                    serving(gateway_command, GATEWAY_CORE, env, directory / "gateway.log", gateway_url) as gateway,
                    serving(
                        [*providers_command, str(providers_port)],
                        PROVIDERS_CORE,
                        env,
                        directory / "providers.log",
                        providers_url,
                    ) as providers,
                ):
                    watch = CpuWatch(gateway, providers)
                    measured = runner.run(measure(app, options, gateway_url, resident_id, watch, directory, console))
            except BenchError as error:
                console.print("[bold red]The benchmark stopped:[/bold red]")
                console.print(str(error), markup=False, highlight=False)
                for name in ("gateway", "providers"):
                    console.print(f"The {name}'s log ends:\n{tail(directory / f'{name}.log', 20)}", markup=False)
                return 1
        status = report(console, measured, header)
        for name, path in measured.profiles.items():
            if path.exists():
                profile_summary(path, console, f"py-spy, {name} process")
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_providers"]:
        return serve_providers(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode under load (≤ 120)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per mode")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per mode, alternating (ABBA)")
    parser.add_argument("--concurrency", type=int, default=16, help="workers, each doing requests back to back")
    parser.add_argument(
        "--load-core", choices=("0", "1", "any"), default=DEFAULT_LOAD_CORE, help="where the load generator runs"
    )
    parser.add_argument("--profile", action="store_true", help="add a gateway round sampled by py-spy")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS or not 0 <= args.warmup <= MAX_SECONDS:
        parser.error(f"--seconds and --warmup: at most {MAX_SECONDS:g} s")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY or not 1 <= args.rounds <= 10:
        parser.error(f"--concurrency 1–{MAX_CONCURRENCY}, --rounds 1–10")
    options = Options(
        args.seconds,
        args.warmup,
        args.rounds,
        args.concurrency,
        args.load_core,
        find_py_spy() if args.profile else None,
    )
    return run_bench(options, Console(width=max(Console().width, 160)))


if __name__ == "__main__":
    sys.exit(main())
