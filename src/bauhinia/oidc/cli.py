"""`bauhinia clients …` and `bauhinia keys …`: the operator's commands for the OpenID provider."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from bauhinia.oidc.keys import JWKS_MAX_AGE
from bauhinia.oidc.service import OPERATOR_SCOPE, OidcService
from bauhinia.oneshot import run_with_app

clients_app = typer.Typer(
    help="Clients of the OpenID provider (departments' services and back-ends).", no_args_is_help=True
)
keys_app = typer.Typer(help="The OpenID provider's signing keys.", no_args_is_help=True)
console = Console(stderr=True)
T = TypeVar("T")
DataDirOption = Annotated[Path | None, typer.Option(help="Directory for the SQLite database, keys and demo files.")]


def with_service(data_dir: Path | None, work: Callable[[Any, OidcService], Awaitable[T]]) -> T:
    """Run ``work(db, service)`` against the configured database, then close it."""
    return run_with_app(data_dir, lambda db, state: work(db, state.oidc))


def _metadata(options: dict[str, Any], metadata_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(metadata_file.read_text()) if metadata_file else {}
    names = {
        k: v
        for k, v in (
            ("en", options.pop("name")),
            ("zh-Hant", options.pop("name_zh_hant")),
            ("zh-Hans", options.pop("name_zh_hans")),
        )
        if v
    }
    if names:
        values["client_name"] = names
    if options.pop("operator"):
        options["grant_types"] = ["client_credentials"]
        options["scopes"] = [OPERATOR_SCOPE]
    jwks_file = options.pop("jwks_file")
    if jwks_file is not None:
        values["jwks"] = json.loads(Path(jwks_file).read_text())
    for key, value in options.items():
        if value not in (None, [], ()):
            values[key] = value
    return values


@clients_app.command("add")
def add(
    client_id: Annotated[str, typer.Option("--client-id", help="Lower-case id, e.g. housing-portal.")],
    name: Annotated[str | None, typer.Option(help="Service name in English.")] = None,
    name_zh_hant: Annotated[str | None, typer.Option(help="Name in Traditional Chinese.")] = None,
    name_zh_hans: Annotated[str | None, typer.Option(help="Name in Simplified Chinese.")] = None,
    department: Annotated[str | None, typer.Option()] = None,
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Exact redirect URI; repeat for several.")] = None,
    post_logout_redirect_uri: Annotated[list[str] | None, typer.Option()] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option()] = None,
    grant_type: Annotated[
        list[str] | None, typer.Option(help="authorization_code, refresh_token, client_credentials.")
    ] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Allowed scope; repeat for several.")] = None,
    item: Annotated[list[str] | None, typer.Option(help="e-ME item the service may ask for; repeat.")] = None,
    auth_method: Annotated[str | None, typer.Option(help="private_key_jwt, client_secret_basic or none.")] = None,
    jwks_file: Annotated[Path | None, typer.Option(help="The client's public JWK set (JSON file).")] = None,
    jwks_uri: Annotated[str | None, typer.Option()] = None,
    sector_identifier: Annotated[str | None, typer.Option(help="Pairwise subject sector, e.g. housing.gov.hk.")] = None,
    subject_type: Annotated[str | None, typer.Option(help="pairwise (default) or public.")] = None,
    required_acr: Annotated[str | None, typer.Option(help="basic or verified.")] = None,
    fapi: Annotated[bool, typer.Option("--fapi", help="FAPI 2.0: PAR, private_key_jwt and DPoP required.")] = False,
    operator: Annotated[bool, typer.Option("--operator", help="A client of the operator API.")] = False,
    metadata_file: Annotated[
        Path | None, typer.Option(help="All metadata as a JSON file (options override it).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Register a client; its metadata is validated. Prints the client (and a generated secret, once)."""
    from bauhinia.oidc.clients import ClientRegistrationError
    from bauhinia.oidc.schemas import ClientMetadata

    options = {
        "client_id": client_id,
        "name": name,
        "name_zh_hant": name_zh_hant,
        "name_zh_hans": name_zh_hans,
        "department": department,
        "redirect_uris": redirect_uri,
        "post_logout_redirect_uris": post_logout_redirect_uri,
        "backchannel_logout_uri": backchannel_logout_uri,
        "grant_types": grant_type,
        "scopes": scope,
        "items": item,
        "token_endpoint_auth_method": auth_method,
        "jwks_file": jwks_file,
        "jwks_uri": jwks_uri,
        "sector_identifier": sector_identifier,
        "subject_type": subject_type,
        "required_acr": required_acr,
        "fapi": fapi or None,
        "operator": operator,
    }
    try:
        metadata = ClientMetadata.model_validate(_metadata(options, metadata_file))
    except (ValidationError, ValueError, OSError) as exc:
        console.print(f"[red]Invalid client metadata:[/red] {exc}")
        raise typer.Exit(1) from exc

    async def register(db: Any, service: OidcService) -> str | None:
        from bauhinia.core import audit

        secret = await service.clients.register(db, metadata)
        await audit.record(db, "oidc.client_registered", actor="operator:cli", subject=f"client:{metadata.client_id}")
        await db.commit()
        return secret

    try:
        secret = with_service(data_dir, register)
    except ClientRegistrationError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    shown: dict[str, Any] = {
        "client_id": metadata.client_id,
        "metadata": metadata.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    if secret:
        shown["client_secret"] = secret
    typer.echo(json.dumps(shown, indent=2, ensure_ascii=False))


@clients_app.command("list")
def list_clients(data_dir: DataDirOption = None) -> None:
    """Every registered client, with its grant types, scopes and state."""

    async def fetch(db: Any, service: OidcService) -> list[Any]:
        return await service.clients.all(db)

    table = Table(Column("client id", no_wrap=True), Column("state", no_wrap=True), "name", "department")
    for heading in ("grants", "scopes", "auth", "FAPI"):
        table.add_column(heading)
    for client in with_service(data_dir, fetch):
        m = client.metadata
        table.add_row(
            client.client_id,
            "[red]disabled[/red]" if client.disabled else "[green]active[/green]",
            m.client_name.en,
            m.department.en if m.department else "",
            ", ".join(g.value for g in m.grant_types),
            " ".join(m.scopes),
            m.token_endpoint_auth_method.value,
            "yes" if m.fapi else "no",
        )
    Console().print(table)


@clients_app.command("disable")
def disable(client_id: str, data_dir: DataDirOption = None) -> None:
    """Disable a client: it can no longer sign anyone in or get tokens."""

    async def run(db: Any, service: OidcService) -> bool:
        from bauhinia.core import audit

        if await service.clients.get(db, client_id) is None:
            return False
        if await service.clients.disable(db, client_id):
            await audit.record(db, "oidc.client_disabled", actor="operator:cli", subject=f"client:{client_id}")
        await db.commit()
        return True

    if not with_service(data_dir, run):
        console.print(f"[red]No client {client_id!r}.[/red]")
        raise typer.Exit(1)
    typer.echo(f"Disabled {client_id}.")


@keys_app.command("rotate")
def rotate(
    activate_in: Annotated[
        int, typer.Option(help="Seconds before the new keys start signing (let JWKS caches fetch them first).")
    ] = int(JWKS_MAX_AGE.total_seconds()),
    data_dir: DataDirOption = None,
) -> None:
    """Add new signing keys; the current ones keep being published until what they signed has expired."""

    async def run(db: Any, service: OidcService) -> list[str]:
        from bauhinia.core import audit

        await service.keys.refresh(db)
        added = await service.keys.rotate(db, timedelta(seconds=activate_in))
        await audit.record(db, "oidc.keys_rotated", actor="operator:cli", subject="oidc:keys", data={"added": added})
        await db.commit()
        return added

    added = with_service(data_dir, run)
    typer.echo(json.dumps({"added": added, "signing_in_seconds": activate_in}))


@keys_app.command("list")
def list_keys(data_dir: DataDirOption = None) -> None:
    """The published signing keys and when each signs."""

    async def run(db: Any, service: OidcService) -> list[dict[str, Any]]:
        await service.keys.refresh(db)
        return service.keys.summary()

    table = Table(Column("kid", no_wrap=True), "type", "signs from", "retired at")
    for key in with_service(data_dir, run):
        table.add_row(key["kid"], key["kty"], key["active_from"], str(key["retired_at"] or ""))
    Console().print(table)
