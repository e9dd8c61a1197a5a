"""`bauhinia eproof …` and `bauhinia verify`: checking the log, fetching a trust file, verifying offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bauhinia.oneshot import run_with_app
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
        with Progress(
            TextColumn("Checking the log"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("check")
            return await state.eproof.log.check(
                db, lambda done, total: progress.update(task, completed=done, total=total)
            )

    report = run_with_app(data_dir, work)
    if not report.ok:
        console.print(f"[red]The log does not check out:[/red] {report.problem}")
        raise typer.Exit(1)
    console.print(f"[green]The log checks out:[/green] {report.entries} entries, every checkpoint and tile matches.")


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
