"""`bauhinia eproof …` and `bauhinia verify`: checking the log, fetching a trust file, verifying offline."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bauhinia.eproof.service import EproofError
from bauhinia.oneshot import run_with_app
from bauhinia.sdk.monitor import LogMonitor, MonitorState
from bauhinia.sdk.transparency import LogProofError
from bauhinia.sdk.verifier import Trust, Verdict, fetch_trust, verify

eproof_app = typer.Typer(help="e-Proof: the transparency log and offline verification.", no_args_is_help=True)
console = Console(stderr=True)
DataDirOption = Annotated[Path | None, typer.Option(help="Directory for the SQLite database, keys and demo files.")]
CHECK_NAMES = {
    "signature": "Issuer's signature",
    "log": "In the transparency log",
    "status": "Not revoked or suspended",
    "validity": "Within its validity period",
    "holder": "Presented by its holder",
}


@eproof_app.command("check-log")
def check_log(data_dir: DataDirOption = None) -> None:
    """Rebuild the transparency log from its entries and hold every checkpoint and tile against it; exit 1
    at the first entry, tile or checkpoint that does not fit."""

    async def work(db: Any, state: Any) -> Any:
        with _progress("Checking the log") as progress:
            task = progress.add_task("check")
            return await state.eproof.log.check(
                db, lambda done, total: progress.update(task, completed=done, total=total)
            )

    report = run_with_app(data_dir, work)
    if not report.ok:
        console.print(f"[red]The log does not check out:[/red] {report.problem}")
        raise typer.Exit(1)
    console.print(f"[green]The log checks out:[/green] {report.entries} entries, every checkpoint and tile matches.")


@eproof_app.command("rotate-key")
def rotate_key(
    member: Annotated[str, typer.Argument(help="The issuing department's member id, e.g. HK/GOV/TD")],
    activate_in: Annotated[
        int,
        typer.Option(
            min=0,
            max=366 * 86_400,
            help="Seconds before the new key signs: verifiers' trust files should fetch it first (a day).",
        ),
    ] = 86_400,
    data_dir: DataDirOption = None,
) -> None:
    """Give an issuing department a new signing key, published now and signing from --activate-in; the
    old one stops signing then and stays published, so what it signed still verifies."""

    async def work(db: Any, state: Any) -> tuple[str, datetime]:
        rotated: tuple[str, datetime] = await state.eproof.rotate_issuer_key(
            db, member, timedelta(seconds=activate_in), "operator:cli"
        )
        return rotated

    try:
        kid, start = run_with_app(data_dir, work)
    except EproofError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    signs_from = start.isoformat(timespec="seconds")
    typer.echo(json.dumps({"member": member, "kid": kid, "signs_from": signs_from, "signing_in_seconds": activate_in}))


@eproof_app.command("trust")
def trust(
    url: Annotated[str, typer.Argument(help="The platform's public URL, e.g. https://id.gov.hk")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the trust file.")] = Path("trust.json"),
) -> None:
    """Fetch the discovery document and status lists into a trust file, for `bauhinia verify` offline."""
    try:
        fetched = fetch_trust(url)
    except Exception as exc:  # any reason: the command says what it could not fetch
        console.print(f"[red]Could not fetch the trust file from {url}:[/red] {exc}")
        raise typer.Exit(1) from exc
    output.write_text(fetched.to_json())
    console.print(f"Wrote {output}: {len(fetched.issuers)} issuers, {len(fetched.status_tokens)} status lists.")


@eproof_app.command("monitor")
def monitor(
    url: Annotated[str, typer.Argument(help="The platform's public URL, e.g. https://id.gov.hk")],
    state_file: Annotated[
        Path, typer.Option("--state", help="What the monitor remembers between runs (created on the first).")
    ] = Path("monitor.json"),
    trust_file: Annotated[
        Path | None, typer.Option("--trust", help="Pin the log's key from this trust file on the first run.")
    ] = None,
) -> None:
    """Read every new entry of the public log, rebuild the tree and hold it against the latest signed
    checkpoint; exit 1 if the log rewrote its history or serves entries it did not sign, 2 if it cannot
    be reached."""
    base = url.rstrip("/")
    with httpx.Client(timeout=30, follow_redirects=False) as http:
        try:
            state = _monitor_state(http, base, state_file, trust_file)
            with _progress("Reading the log") as progress:
                task = progress.add_task("read")
                seen = LogMonitor(http, f"{base}/eproof/log", state).observe(
                    lambda done, total: progress.update(task, completed=done, total=total)
                )
        except LogProofError as exc:
            console.print(f"[red]The log does not check out:[/red] {exc}")
            raise typer.Exit(1) from exc
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
            console.print(f"[red]Could not read the log or the state at {base}:[/red] {exc}")
            raise typer.Exit(2) from exc
    _write_atomically(state_file, state.to_json())
    new = ", ".join(f"{n} {event}" for event, n in sorted(seen.new_events.items())) or "nothing new"
    size, read = seen.checkpoint.size, seen.checkpoint.size - seen.previous_size
    console.print(
        f"[green]The log checks out:[/green] {size} entries, {read} read now ({new}); every one matches the "
        "signed checkpoint, which extends what was seen before."
    )


def _monitor_state(http: httpx.Client, base: str, state_file: Path, trust_file: Path | None) -> MonitorState:
    """The state of earlier runs, or a new one pinning the log's key: from a trust file, else from the
    discovery document on first use (said aloud, as the key is then only as good as that first fetch)."""
    if state_file.exists():
        state = MonitorState.from_json(state_file.read_text())
        if trust_file is not None and Trust.from_json(trust_file.read_text()).log_vkey != state.log_vkey:
            console.print("[yellow]The trust file names another log key than the pinned one, which stays.[/yellow]")
        return state
    if trust_file is not None:
        return MonitorState(Trust.from_json(trust_file.read_text()).log_vkey)
    vkey = http.get(f"{base}/.well-known/bauhinia-eproof").raise_for_status().json()["log"]["vkey"]
    console.print(f"Pinned the log's key on first use: {vkey}")
    return MonitorState(str(vkey))


def _write_atomically(path: Path, text: str) -> None:
    """A crash mid-write leaves the old state, never half of one (which would re-pin the key on first use)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _progress(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)


def verify_command(
    file: Annotated[Path, typer.Argument(help="A printed code (BH1:…), an SD-JWT or a credential file (JSON).")],
    trust_file: Annotated[Path, typer.Option("--trust", help="The trust file from `bauhinia eproof trust`.")] = Path(
        "trust.json"
    ),
    audience: Annotated[str | None, typer.Option(help="Expect a presentation made for this verifier.")] = None,
    nonce: Annotated[str | None, typer.Option(help="Expect a presentation made with this nonce.")] = None,
) -> None:
    """Verify a credential offline against a trust file; exit 0 if every check passes, 1 otherwise."""
    try:
        text = file.read_text()
        pinned = Trust.from_json(trust_file.read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        console.print(f"[red]Cannot read the credential or the trust file:[/red] {exc}")
        raise typer.Exit(2) from exc
    verdict = verify(text, pinned, audience=audience, nonce=nonce)
    show(verdict, pinned)
    raise typer.Exit(0 if verdict.valid else 1)


def show(verdict: Verdict, pinned: Trust) -> None:
    out = Console()
    kind = pinned.credential_types.get(verdict.type_id or "", {})
    title = kind.get("name", {}).get("en", verdict.type_id or "Unknown credential")
    out.print(f"[bold]{title}[/bold] ({verdict.form}) issued by {verdict.issuer or 'an unknown issuer'}")
    table = Table("check", "result")
    for check, label in CHECK_NAMES.items():
        if check in verdict.outcomes:
            passed, reason = verdict.outcomes[check]
            table.add_row(label, f"[green]yes[/green] {reason}" if passed else f"[red]no[/red] ({reason})")
        elif check in verdict.unchecked:
            table.add_row(label, "not checked (no proof bundle was handed over)")
    out.print(table)
    if verdict.witnessed:
        out.print(f"Cosigned by the witnesses: {', '.join(sorted(verdict.witnessed))}")
    titles = kind.get("claim_titles", {})
    for name, value in verdict.claims.items():
        out.print(f"  {titles.get(name, {}).get('en', name)}: {value}")
    out.print("[bold green]VALID[/bold green]" if verdict.valid else "[bold red]NOT VALID[/bold red]")
