"""The operator API: register, list and disable clients.

Callers authenticate with an access token from the ``client_credentials`` grant carrying the
``bauhinia.operator`` scope (a client the operator created with ``bauhinia clients add --operator``).
Errors are RFC 9457 problem details.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bauhinia.core import audit
from bauhinia.core.database import SessionDep
from bauhinia.core.errors import Problem, invalid_input
from bauhinia.oidc.clients import Client, ClientRegistrationError
from bauhinia.oidc.schemas import ClientMetadata, RegisteredClient
from bauhinia.oidc.service import OPERATOR_SCOPE, calling_client, oidc_service

router = APIRouter(prefix="/api/operator", tags=["Operator"])


async def operator(request: Request, db: SessionDep) -> str:
    """The calling operator client's id, from a live access token with the operator scope."""
    return await calling_client(request, db, scope=OPERATOR_SCOPE)


Operator = Annotated[str, Depends(operator)]


def shown(client: Client) -> RegisteredClient:
    return RegisteredClient(
        client_id=client.client_id,
        metadata=client.metadata,
        disabled=client.disabled,
        created_at=client.created_at.isoformat(),
    )


@router.get("/clients", summary="Every registered client")
async def list_clients(request: Request, db: SessionDep, caller: Operator) -> list[RegisteredClient]:
    return [shown(c) for c in await oidc_service(request).clients.all(db)]


@router.get("/clients/{client_id}", summary="One client")
async def get_client(request: Request, db: SessionDep, client_id: str, caller: Operator) -> RegisteredClient:
    client = await oidc_service(request).clients.get(db, client_id)
    if client is None:
        raise Problem(404, "Not Found", f"No client {client_id!r}.")
    return shown(client)


@router.post("/clients", status_code=201, summary="Register a client (its metadata is validated)")
async def add_client(request: Request, db: SessionDep, body: dict[str, Any], caller: Operator) -> JSONResponse:
    try:
        metadata = ClientMetadata.model_validate(body)
    except ValidationError as exc:
        raise invalid_input(exc, "The client metadata is invalid.") from exc
    service = oidc_service(request)
    try:
        secret = await service.clients.register(db, metadata)
    except ClientRegistrationError as exc:
        raise Problem(409, "Conflict", str(exc)) from exc
    await audit.record(db, "oidc.client_registered", actor=f"client:{caller}", subject=f"client:{metadata.client_id}")
    await db.commit()
    client = await service.clients.get(db, metadata.client_id)
    assert client is not None
    body_out = shown(client).model_dump(mode="json", by_alias=True)
    if secret:
        body_out["client_secret"] = secret
    return JSONResponse(body_out, status_code=201, headers={"Cache-Control": "no-store"})


@router.post("/clients/{client_id}/disable", summary="Disable a client: it can no longer sign anyone in")
async def disable_client(request: Request, db: SessionDep, client_id: str, caller: Operator) -> RegisteredClient:
    service = oidc_service(request)
    if await service.clients.get(db, client_id) is None:
        raise Problem(404, "Not Found", f"No client {client_id!r}.")
    if await service.clients.disable(db, client_id):
        await audit.record(db, "oidc.client_disabled", actor=f"client:{caller}", subject=f"client:{client_id}")
    await db.commit()
    client = await service.clients.get(db, client_id)
    assert client is not None
    return shown(client)
