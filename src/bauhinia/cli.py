"""The `bauhinia` command: demo, serve, migrate, audit, staff."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.eproof.cli import eproof_app, verify_command
from bauhinia.exchange.cli import exchange_app
from bauhinia.oidc.cli import clients_app, keys_app
from bauhinia.oneshot import run_with_app, settings_for
from bauhinia.settings import Mode, Settings

app = typer.Typer(help="Bauhinia: digital identity, consented data exchange and e-Proof.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts for the counter.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(staff_app, name="staff")
app.add_typer(clients_app, name="clients")
app.add_typer(keys_app, name="keys")
app.add_typer(exchange_app, name="exchange")
app.add_typer(eproof_app, name="eproof")
app.command("verify")(verify_command)
console = Console(stderr=True)

HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.")]
DataDirOption = Annotated[Path | None, typer.Option(help="Directory for the SQLite database, keys and demo files.")]


def _migrate(settings: Settings) -> None:
    from bauhinia.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)


@app.command()
def migrate(data_dir: DataDirOption = None) -> None:
    """Bring the database schema up to date (safe to run on every deploy; one node migrates at a time)."""
    settings = settings_for(data_dir)
    _migrate(settings)
    console.print("[green]Database is up to date.[/green]")


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8000, data_dir: DataDirOption = None) -> None:
    """Serve the platform (settings from BAUHINIA_* variables)."""
    from bauhinia.app import create_app

    settings = settings_for(data_dir)
    _run_server(create_app(settings), host, port)


def _run_server(application: object, host: str, port: int) -> None:
    """uvicorn on uvloop and httptools, after moving everything loaded at start-up out of the collector's
    reach. Measured on the token endpoint: full collections that walked the start-up objects (SQLAlchemy,
    pydantic, Jinja) paused the server often enough to put p99 at ~100 ms; frozen, 15 ms (performance.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)  # young collections less often: request garbage is short-lived
    uvicorn.run(
        application,  # type: ignore[arg-type]
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


@app.command()
def demo(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    data_dir: Annotated[Path, typer.Option(help="Directory for the demo's database and files.")] = Path(
        "bauhinia-data"
    ),
    seed_only: Annotated[
        bool, typer.Option("--seed-only", help="Migrate and seed, then exit without serving.")
    ] = False,
) -> None:
    """Migrate an embedded SQLite database, seed demo residents and staff, and serve everything on one port."""
    from bauhinia.app import create_app

    # Loopback is published as localhost: browsers refuse an IP address as a passkey's relying party.
    loopback = host in ("127.0.0.1", "::1", "0.0.0.0", "::", "localhost")  # noqa: S104 (a comparison)
    public_url = f"http://{'localhost' if loopback else host}:{port}"
    settings = settings_for(data_dir, mode=Mode.DEMO, public_url=public_url)
    with console.status("Migrating the database…"):
        _migrate(settings)
    application = create_app(settings)
    accounts = asyncio.run(_seed(application, settings))
    _print_welcome(public_url, accounts, settings.data_dir)
    if not seed_only:
        _run_server(application, host, port)


async def _seed(application: object, settings: Settings) -> list[object]:
    from datetime import date

    from bauhinia.eproof.demo import issue_demo_credentials, register_demo_types
    from bauhinia.exchange.demo import register_demo_members, write_department_records
    from bauhinia.oidc.demo_clients import register_demo_clients
    from bauhinia.seed import demo_identity_numbers, seed_demo

    state = application.state  # type: ignore[attr-defined]
    async with state.sessionmaker() as db:
        accounts = await seed_demo(db, state.identity, settings.data_dir, date.today())
        await register_demo_clients(db, state.oidc, settings.data_dir)
        await register_demo_members(db, state.exchange, settings.data_dir)
        await write_department_records(db, state.exchange, settings.data_dir)
        await register_demo_types(db, state.eproof)
        with Progress(TextColumn("Issuing the demo's e-Proof credentials"), BarColumn(), MofNCompleteColumn()) as bar:
            task = bar.add_task("issuing")

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            await issue_demo_credentials(db, state.engine, state.eproof, demo_identity_numbers(), advance)
    await state.engine.dispose()
    return list(accounts)


def _print_welcome(url: str, accounts: list[object], data_dir: Path) -> None:
    out = Console(soft_wrap=True)
    out.print(f"\n[bold]Bauhinia is running at[/bold] {url}")
    out.print(f"  Staff area: {url}/staff   API description: {url}/openapi.json   Health: {url}/readyz")
    out.print(f"\n[bold]Demo accounts[/bold] (also in {data_dir / 'demo-accounts.json'}):")
    for account in accounts:
        a = account
        out.print(f"  [cyan]{a.login}[/cyan] ({a.kind}): {a.description}")  # type: ignore[attr-defined]
        out.print(f"      password: {a.password}   authenticator app key: {a.totp_secret}")  # type: ignore[attr-defined]
    out.print(
        f"\n[bold]Demo clients[/bold] (id, scopes and private key of each in {data_dir / 'clients'}): "
        "housing-portal (FAPI 2.0), td-licensing, ird-backend, immd-backend, td-backend, housing-backend, "
        "platform-operator"
    )
    out.print(
        f"\n[bold]Data exchange members[/bold] (each system's private keys in {data_dir / 'members'}): "
        "Immigration, Inland Revenue, Transport (providers) and Housing (consumer)"
    )
    out.print(
        f"\n[bold]Try the data exchange[/bold]: {url}/demo/housing/apply — the Housing Department's application "
        "fills itself in from other departments' records once you consent (sign in as chan.taiman@…); "
        f"then see {url}/account/consents and {url}/account/data-use"
    )
    out.print(
        f"\n[bold]Try e-Proof[/bold]: chan.taiman@… holds a driving licence in {url}/account/wallet; anyone can "
        f"check its QR code at {url}/verify. The transparency log: {url}/.well-known/bauhinia-eproof"
    )
    out.print(
        "\nAdd a key to an authenticator app, or print the current code: "
        f"bauhinia demo-code LOGIN --data-dir {data_dir}"
    )


@app.command("demo-code")
def demo_code(login: str, data_dir: Annotated[Path, typer.Option()] = Path("bauhinia-data")) -> None:
    """Print the current authenticator-app code of a demo account (demo data only)."""
    from bauhinia.identity import totp

    accounts = json.loads((data_dir / "demo-accounts.json").read_text())
    match = next((a for a in accounts if a["login"] == login), None)
    if match is None:
        console.print(f"[red]No demo account {login!r}.[/red]")
        raise typer.Exit(1)
    typer.echo(totp.current_code(match["totp_secret"]))


@audit_app.command("verify")
def audit_verify(data_dir: DataDirOption = None) -> None:
    """Recompute the audit log's hash chain from the first event; exit 1 at the first broken link."""
    from bauhinia.core import audit
    from bauhinia.core.database import create_engine, create_sessionmaker

    settings = settings_for(data_dir)

    async def run() -> audit.ChainReport:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(engine)() as db:
                total = await audit.count_events(db)
                with Progress(
                    TextColumn("Verifying audit log"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console,
                ) as progress:
                    task = progress.add_task("verify", total=total)
                    return await audit.verify_chain(db, lambda n: progress.advance(task, n))
        finally:
            await engine.dispose()

    report = asyncio.run(run())
    if report.ok:
        typer.echo(f"OK: {report.events} events, chain intact.")
        return
    typer.echo(f"BROKEN at event {report.first_bad_seq}: {report.reason} ({report.events} events verified before it).")
    raise typer.Exit(1)


@app.command()
def purge(data_dir: DataDirOption = None) -> None:
    """Delete expired browser sessions, the OpenID provider's expired codes, tokens and one-time values, and
    outbox messages delivered or given up more than 7 days ago; mark consents whose time has passed EXPIRED
    and tell their consumers (run it from cron; the sessions, codes, tokens and consents already stop
    working when they expire)."""
    from bauhinia.core import outbox

    async def run(db: AsyncSession, state: Any) -> tuple[int, int, int, int]:
        sessions = await state.session_manager.purge_expired(db)
        provider = await state.oidc.purge_expired(db)
        messages = await outbox.purge_finished(db)
        await db.commit()
        consents = 0
        while expired := await state.exchange.consents.expire_due(db):  # in batches
            consents += expired
        return sessions, provider, messages, consents

    sessions, provider, messages, consents = run_with_app(data_dir, run)
    typer.echo(
        f"Removed {sessions} expired sessions and {provider} expired OpenID provider records, "
        f"and {messages} outbox messages delivered or given up over 7 days ago; {consents} consents expired."
    )


@staff_app.command("add")
def staff_add(
    username: str,
    display_name: Annotated[str, typer.Option("--name", help="The name residents see.")],
    role: Annotated[list[str], typer.Option(help="officer or admin; repeat for several.")],
    data_dir: DataDirOption = None,
) -> None:
    """Create a staff account; prints its one-time password and authenticator key once."""
    import secrets

    from bauhinia.identity import totp
    from bauhinia.identity.service import IdentityError

    password = "-".join(secrets.token_urlsafe(6) for _ in range(4))
    secret = totp.new_secret()

    async def run(db: AsyncSession, state: Any) -> None:
        await state.identity.create_staff(db, username, display_name, role, password, secret)

    try:
        run_with_app(data_dir, run)
    except IdentityError as error:
        console.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from error
    typer.echo(json.dumps({"username": username, "password": password, "totp_secret": secret}))
