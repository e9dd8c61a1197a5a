"""`bauhinia exchange …`: the operator's commands for the gateway's registry."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Column, Table

from bauhinia.exchange.schemas import (
    DataItemPublication,
    MemberRegistration,
    PurposeRegistration,
    SystemRegistration,
)
from bauhinia.exchange.service import ExchangeError, ExchangeService
from bauhinia.oneshot import run_with_app

exchange_app = typer.Typer(help="The data exchange gateway's registry.", no_args_is_help=True)
members_app = typer.Typer(help="Members: departments taking part in the exchange.", no_args_is_help=True)
systems_app = typer.Typer(help="Members' systems: data providers and consumers.", no_args_is_help=True)
items_app = typer.Typer(help="The data catalogue's items (versioned).", no_args_is_help=True)
purposes_app = typer.Typer(help="Purposes a consumer may ask for data for.", no_args_is_help=True)
exchange_app.add_typer(members_app, name="members")
exchange_app.add_typer(systems_app, name="systems")
exchange_app.add_typer(items_app, name="items")
exchange_app.add_typer(purposes_app, name="purposes")
console = Console(stderr=True)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
ACTOR = "operator:cli"
DataDirOption = Annotated[Path | None, typer.Option(help="Directory for the SQLite database, keys and demo files.")]
FileOption = Annotated[Path, typer.Option("--file", help="The definition as a JSON file.")]


def with_exchange(data_dir: Path | None, work: Callable[[Any, ExchangeService], Awaitable[T]]) -> T:
    """Run ``work(db, service)`` against the configured database, then close it; a refusal exits with 1."""
    try:
        return run_with_app(data_dir, lambda db, state: work(db, state.exchange))
    except ExchangeError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc


def parsed(model: type[M], values: dict[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        console.print(f"[red]Invalid {model.__name__}:[/red] {exc}")
        raise typer.Exit(1) from exc


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        console.print(f"[red]Cannot read {path}:[/red] {exc}")
        raise typer.Exit(1) from exc


def show(model: BaseModel) -> None:
    typer.echo(json.dumps(model.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False))


def state(disabled: bool) -> str:
    return "[red]disabled[/red]" if disabled else "[green]active[/green]"


@members_app.command("add")
def members_add(
    member_id: Annotated[str, typer.Option("--id", help="instance/memberClass/memberCode, e.g. HK/GOV/IMMD.")],
    name: Annotated[str, typer.Option(help="Name in English.")],
    name_zh_hant: Annotated[str, typer.Option(help="Name in Traditional Chinese.")] = "",
    name_zh_hans: Annotated[str, typer.Option(help="Name in Simplified Chinese.")] = "",
    data_dir: DataDirOption = None,
) -> None:
    """Register a member."""
    names = {"en": name, "zh-Hant": name_zh_hant, "zh-Hans": name_zh_hans}
    member = parsed(MemberRegistration, {"id": member_id, "name": names})
    show(with_exchange(data_dir, lambda db, s: s.register_member(db, member, actor=ACTOR)))


@members_app.command("list")
def members_list(data_dir: DataDirOption = None) -> None:
    """Every member."""
    table = Table(Column("member id", no_wrap=True), "class", "name", "state")
    for m in with_exchange(data_dir, lambda db, s: s.members(db)):
        table.add_row(m.id, m.member_class, m.name.en, state(m.disabled))
    Console().print(table)


@systems_app.command("add")
def systems_add(
    file: Annotated[Path | None, typer.Option("--file", help="The whole definition as JSON.")] = None,
    system_id: Annotated[str | None, typer.Option("--id", help="e.g. HK/GOV/IMMD/residency.")] = None,
    role: Annotated[list[str] | None, typer.Option(help="provider or consumer; repeat for both.")] = None,
    signing_jwks_file: Annotated[Path | None, typer.Option(help="Public signing keys (JWK set).")] = None,
    encryption_jwks_file: Annotated[Path | None, typer.Option(help="Public encryption keys (JWK set).")] = None,
    data_endpoint: Annotated[str | None, typer.Option(help="A provider's base URL.")] = None,
    webhook_url: Annotated[str | None, typer.Option(help="A consumer's webhook URL.")] = None,
    client_id: Annotated[str | None, typer.Option(help="Its OpenID client (client_credentials).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a member's system: from a JSON file, options, or both (options win)."""
    values: dict[str, Any] = read_json(file) if file else {}
    options = {"id": system_id, "roles": role, "data_endpoint": data_endpoint, "webhook_url": webhook_url}
    options |= {"client_id": client_id}
    if signing_jwks_file:
        options["signing_jwks"] = read_json(signing_jwks_file)
    if encryption_jwks_file:
        options["encryption_jwks"] = read_json(encryption_jwks_file)
    values |= {k: v for k, v in options.items() if v not in (None, [])}
    system = parsed(SystemRegistration, values)
    show(with_exchange(data_dir, lambda db, s: s.register_system(db, system, actor=ACTOR)))


@systems_app.command("list")
def systems_list(data_dir: DataDirOption = None) -> None:
    """Every system, with its roles, client and state."""
    table = Table(Column("system id", no_wrap=True), "roles", "client", "state")
    for system in with_exchange(data_dir, lambda db, s: s.systems(db)):
        table.add_row(system.id, ", ".join(system.roles), system.client_id, state(system.disabled))
    Console().print(table)


@items_app.command("publish")
def items_publish(file: FileOption, data_dir: DataDirOption = None) -> None:
    """Publish a data item, or a new version of it (the previous version stays readable)."""
    item = parsed(DataItemPublication, read_json(file))
    show(with_exchange(data_dir, lambda db, s: s.publish_item(db, item, actor=ACTOR)))


@items_app.command("list")
def items_list(
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Include superseded versions.")] = False,
    data_dir: DataDirOption = None,
) -> None:
    """The catalogue: the current version of every item."""
    table = Table(Column("item id", no_wrap=True), "version", "title", "provider", "sensitivity")
    for item in with_exchange(data_dir, lambda db, s: s.items(db, include_superseded=all_versions)):
        version = f"{item.version}" + (" (superseded)" if item.superseded else "")
        table.add_row(item.id, version, item.title.en, item.provider_system_id, item.sensitivity.value)
    Console().print(table)


@purposes_app.command("add")
def purposes_add(file: FileOption, data_dir: DataDirOption = None) -> None:
    """Register a purpose and the consumer systems that may use it."""
    purpose = parsed(PurposeRegistration, read_json(file))
    show(with_exchange(data_dir, lambda db, s: s.register_purpose(db, purpose, actor=ACTOR)))


@purposes_app.command("list")
def purposes_list(data_dir: DataDirOption = None) -> None:
    """Every purpose and who may use it."""
    table = Table(Column("code", no_wrap=True), "description", "consumers")
    for purpose in with_exchange(data_dir, lambda db, s: s.purposes(db)):
        table.add_row(purpose.code, purpose.description.en, ", ".join(purpose.consumer_system_ids))
    Console().print(table)
