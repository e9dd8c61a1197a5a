"""e-Proof's HTTP API.

- ``/api/eproof/…`` (JSON, RFC 9457 problems): credential types (operators register them), issuance
  and status changes (the issuing department's client, its token DPoP-bound like every other).
- Public reads anyone verifying needs, no sign-in: the discovery document
  ``/.well-known/bauhinia-eproof``, the log's C2SP tlog-tiles API under ``/eproof/log``
  (``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``), consistency proofs,
  a credential's tlog-proof bundle, the Status List Tokens, issuers' keys and types.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from bauhinia.core.database import SessionDep
from bauhinia.core.errors import STATUS_TITLES, Problem
from bauhinia.eproof.schemas import (
    CredentialTypeRegistration,
    IssuanceRequest,
    IssuedCredential,
    RegisteredCredentialType,
    StatusChange,
    StatusName,
)
from bauhinia.eproof.service import EproofError, eproof_service
from bauhinia.eproof.tiles import TilePathError, parse_tile_path
from bauhinia.oidc.service import OPERATOR_SCOPE, calling_client

router = APIRouter(tags=["e-Proof"])
IMMUTABLE = "public, max-age=31536000, immutable"


async def issuer_client(request: Request, db: SessionDep) -> str:
    return await calling_client(request, db)


async def operator(request: Request, db: SessionDep) -> str:
    return await calling_client(request, db, scope=OPERATOR_SCOPE)


Issuer = Annotated[str, Depends(issuer_client)]
Operator = Annotated[str, Depends(operator)]


@contextmanager
def problems() -> Iterator[None]:
    try:
        yield
    except EproofError as exc:
        errors = [{"location": ["body", *exc.location.split("/")], "message": exc.detail}] if exc.location else None
        extensions: dict[str, Any] = {"errors": errors} if errors else {}
        raise Problem(exc.status, STATUS_TITLES[exc.status], exc.detail, **extensions) from exc


# --- credential types, issuance, status ------------------------------------------------------------


@router.get("/api/eproof/credential-types", summary="Every credential type")
async def list_types(request: Request, db: SessionDep) -> list[RegisteredCredentialType]:
    return await eproof_service(request).types(db)


@router.post("/api/eproof/credential-types", status_code=201, summary="Register a credential type (operators)")
async def add_type(
    request: Request, db: SessionDep, body: CredentialTypeRegistration, caller: Operator
) -> RegisteredCredentialType:
    with problems():
        return await eproof_service(request).register_type(db, body, actor=f"client:{caller}")


@router.post("/api/eproof/credentials", status_code=201, summary="Issue a credential (the issuing department)")
async def issue(request: Request, db: SessionDep, body: IssuanceRequest, caller: Issuer) -> IssuedCredential:
    with problems():
        return await eproof_service(request).issue(db, request.app.state.engine, caller, body)


@router.post("/api/eproof/credentials/{credential_id}/status", summary="Revoke, suspend or reinstate")
async def change_status(
    request: Request, db: SessionDep, credential_id: str, body: StatusChange, caller: Issuer
) -> dict[str, StatusName]:
    with problems():
        status = await eproof_service(request).change_status(db, request.app.state.engine, caller, credential_id, body)
    return {"status": status}


# --- public reads ------------------------------------------------------------------------------------


@router.get("/.well-known/bauhinia-eproof", summary="The e-Proof discovery document")
async def discovery(request: Request, db: SessionDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return await eproof_service(request).discovery(db)


@router.get("/eproof/log/checkpoint", summary="The log's latest signed checkpoint (C2SP signed-note)")
async def checkpoint(request: Request, db: SessionDep) -> Response:
    note = await eproof_service(request).log.checkpoint(db)
    if note is None:
        raise Problem(404, "Not Found", "The log is empty.")
    return Response(note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/eproof/log/tile/{path:path}", summary="A hash tile or an entry bundle (C2SP tlog-tiles)")
async def tile(request: Request, db: SessionDep, path: str) -> Response:
    try:
        level, index, width = parse_tile_path(f"tile/{path}")
    except TilePathError as exc:
        raise Problem(404, "Not Found", str(exc)) from exc
    log = eproof_service(request).log
    data = await (log.entry_bundle(db, index, width) if level is None else log.tile(db, level, index, width))
    if data is None:
        raise Problem(404, "Not Found", "The log has no such tile (yet).")
    # A tile of a given width never changes: full and partial tiles alike may be cached for ever.
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE})


@router.get("/eproof/log/consistency", summary="A consistency proof between two tree sizes (RFC 9162)")
async def consistency(
    request: Request,
    db: SessionDep,
    first: Annotated[int, Query(alias="from", ge=1, le=2**53)],
    second: Annotated[int, Query(alias="to", ge=1, le=2**53)],
) -> dict[str, Any]:
    log = eproof_service(request).log
    size = await log.size(db)
    if not first <= second <= size:
        raise Problem(422, STATUS_TITLES[422], f"Sizes must satisfy 1 ≤ from ≤ to ≤ {size} (the log's size).")
    return {"from": first, "to": second, "proof": await log.consistency(db, first, second)}


class CosignatureSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1, le=2**53, description="the size of the checkpoint cosigned")
    cosignature: str = Field(max_length=500, description="the note signature line: — <witness name> <base64>")


@router.post("/eproof/log/cosignatures", status_code=201, summary="A witness's cosignature of a checkpoint")
async def cosignature(request: Request, db: SessionDep, body: CosignatureSubmission) -> dict[str, Any]:
    """Anyone may submit; only a verifying tlog-cosignature/v1 by an accepted witness is kept."""
    with problems():
        witness = await eproof_service(request).accept_cosignature(db, body.size, body.cosignature)
    return {"size": body.size, "witness": witness}


@router.get("/eproof/credentials/{credential_id}/proof", summary="A credential's tlog-proof bundle")
async def proof(request: Request, db: SessionDep, credential_id: str) -> Response:
    bundle = await eproof_service(request).proof_of(db, credential_id)
    if bundle is None:
        raise Problem(404, "Not Found", "No such credential.")
    return Response(bundle, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/eproof/status/{list_id}", summary="A Status List Token (statuslist+jwt)")
async def status_list(request: Request, db: SessionDep, list_id: str) -> Response:
    found = await eproof_service(request).status_list(db, list_id)
    if found is None:
        raise Problem(404, "Not Found", "No such status list.")
    token, version = found
    etag = f'"{list_id}-{version}"'
    headers = {"Cache-Control": "public, max-age=300", "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(token, media_type="application/statuslist+jwt", headers=headers)


@router.get("/eproof/issuers/{member_id:path}", summary="An issuer's public keys (JWKS)")
async def issuer_keys(request: Request, db: SessionDep, member_id: str) -> dict[str, Any]:
    jwks = (await eproof_service(request).issuer_jwks(db)).get(member_id)
    if jwks is None:
        raise Problem(404, "Not Found", "No such issuer.")
    return {"issuer": eproof_service(request).issuer_url(member_id), "jwks": jwks}


@router.get("/eproof/types/{type_id}", summary="A credential type")
async def credential_type(request: Request, db: SessionDep, type_id: str) -> RegisteredCredentialType:
    for kind in await eproof_service(request).types(db):
        if kind.id == type_id:
            return kind
    raise Problem(404, "Not Found", "No such credential type.")
