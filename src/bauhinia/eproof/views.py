"""e-Proof's pages: the public verification page (no sign-in) and the resident's wallet.

The verification page takes what a holder hands over — a QR code's text, a photo or scan of the code,
or a credential file — and says in plain words who issued it, to whom, what it says, and whether it is
valid, check by check. It works without JavaScript: a text box and a file upload.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from typing import Any

import segno
import zxingcpp
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from bauhinia.core.database import SessionDep
from bauhinia.core.web import language_of, templates_of, verify_csrf
from bauhinia.eproof.models import Credential
from bauhinia.eproof.schemas import NAME_BY_STATUS, CredentialStatus
from bauhinia.eproof.service import EproofService, eproof_service
from bauhinia.identity.service import AccountHolder
from bauhinia.sdk.sdjwt import CredentialError, present
from bauhinia.sdk.verifier import CHECKS, Verdict

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)
MAX_UPLOAD = 5 * 1024 * 1024
MAX_PIXELS = 25_000_000  # a phone photo is ~12 MP; more is refused before it is decoded
MAX_TEXT = 64 * 1024


async def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return await templates_of(request).render(request, name, context, status_code=status_code)


def said(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts.get("en") or next(iter(texts.values()), "")


# --- verification ----------------------------------------------------------------------------------------


@router.get("/verify")
async def verification_page(request: Request) -> Response:
    return await render(request, "eproof/verify.html", problem=None)


@router.post("/verify")
async def verify_handed_over(request: Request, db: SessionDep) -> Response:
    form = await request.form(max_files=1, max_fields=5)
    text = form.get("code")
    upload = form.get("file")
    problem = None
    if isinstance(upload, UploadFile) and upload.filename:
        text, problem = await _read_upload(upload)
    if problem is None and (not isinstance(text, str) or not text.strip()):
        problem = "empty"
    if problem is None and isinstance(text, str) and len(text) > MAX_TEXT:
        problem = "too_large"
    if problem is not None or not isinstance(text, str):
        return await render(request, "eproof/verify.html", 422, problem=problem)
    service = eproof_service(request)
    verdict = await service.verify(db, text)
    return await render(request, "eproof/verified.html", **await _verdict_context(request, db, service, verdict))


async def _read_upload(upload: UploadFile) -> tuple[str | None, str | None]:
    """The text in an uploaded file: a photo or scan of a QR code, or a credential file."""
    content = await upload.read(MAX_UPLOAD + 1)
    if len(content) > MAX_UPLOAD:
        return None, "too_large"
    if content[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"\xff\xd8\xff\xdb", b"GIF8", b"RIFF"):
        return _qr_text(content)
    try:
        return content.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "unreadable"


def _qr_text(content: bytes) -> tuple[str | None, str | None]:
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.width * image.height > MAX_PIXELS:
                return None, "too_large"
            image.load()
            found = zxingcpp.read_barcodes(image.convert("L"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, "unreadable"
    codes = [f.text for f in found if f.format == zxingcpp.BarcodeFormat.QRCode and f.text]
    return (codes[0], None) if codes else (None, "no_code")


async def _verdict_context(
    request: Request, db: SessionDep, service: EproofService, verdict: Verdict
) -> dict[str, Any]:
    language = language_of(request)
    kind = await service.credential_type(db, verdict.type_id) if verdict.type_id else None
    member = await service.exchange.active_member(db, verdict.issuer) if verdict.issuer else None
    titles = kind.claim_titles if kind is not None else {}
    claims = [(said(titles.get(name, {"en": name}), language), _shown(value)) for name, value in verdict.claims.items()]
    return {
        "verdict": verdict,
        "checks": [(check, *verdict.outcomes[check]) for check in CHECKS if check in verdict.outcomes],
        "unchecked": verdict.unchecked,
        "type_name": said(kind.name, language) if kind is not None else None,
        "issuer_name": said(member.name.model_dump(by_alias=True), language) if member is not None else verdict.issuer,
        "claims": claims,
        "expires_at": datetime.fromtimestamp(verdict.expires_at, UTC) if verdict.expires_at else None,
    }


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items())
    return str(value)


# --- the wallet --------------------------------------------------------------------------------------------


def qr_data_uri(text: str) -> str:
    """The printed form as an SVG QR code (error correction M), inline in the page."""
    svg = io.BytesIO()
    segno.make(text, error="m", mode="alphanumeric").save(svg, kind="svg", scale=4, border=4, xmldecl=False)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.getvalue()).decode()


async def _cards(request: Request, db: SessionDep, rows: list[Credential]) -> list[dict[str, Any]]:
    service, language = eproof_service(request), language_of(request)
    cards = []
    for row in rows:
        kind = await service.credential_type(db, row.type_id)
        assert kind is not None
        member = await service.exchange.active_member(db, kind.issuer_member_id)
        selective = set(kind.selective)
        issuer = said(member.name.model_dump(by_alias=True), language) if member else kind.issuer_member_id
        cards.append(
            {
                "id": row.id,
                "type_name": said(kind.name, language),
                "issuer_name": issuer,
                "status": NAME_BY_STATUS[CredentialStatus(row.status)].value,
                "issued_at": row.issued_at,
                "expires_at": row.expires_at,
                "claims": [
                    (
                        name,
                        said(kind.claim_titles.get(name, {"en": name}), language),
                        _shown(value),
                        name in selective,
                    )
                    for name, value in row.claims.items()
                ],
                "qr": qr_data_uri(row.printed),
                "printed": row.printed,
            }
        )
    return cards


@router.get("/account/wallet")
async def wallet(request: Request, db: SessionDep, resident: AccountHolder) -> Response:
    rows = await eproof_service(request).wallet(db, resident.id)
    return await render(request, "eproof/wallet.html", cards=await _cards(request, db, rows))


@router.get("/account/wallet/{credential_id}")
async def wallet_card(request: Request, db: SessionDep, credential_id: str, resident: AccountHolder) -> Response:
    row = await eproof_service(request).credential_of(db, resident.id, credential_id)
    if row is None:
        return await render(request, "error.html", 404, status=404)
    return await render(request, "eproof/card.html", card=(await _cards(request, db, [row]))[0])


@router.post("/account/wallet/{credential_id}/present")
async def present_card(request: Request, db: SessionDep, credential_id: str, resident: AccountHolder) -> Response:
    """A one-time presentation of the chosen claims, bound to the wallet's key, as a credential file."""
    service = eproof_service(request)
    row = await service.credential_of(db, resident.id, credential_id)
    if row is None:
        return await render(request, "error.html", 404, status=404)
    form = await request.form(max_files=0, max_fields=50)
    chosen = {str(name): True for name in form.getlist("claim")}
    audience = str(form.get("audience") or "")[:200] or None
    nonce = str(form.get("nonce") or "")[:200] or None
    holder = await service.holder_key(db, resident.id)
    await db.commit()
    try:
        presentation = present(row.sd_jwt, chosen, holder_key=holder, audience=audience, nonce=nonce)
    except CredentialError:
        return await render(request, "error.html", 500, status=500)
    bundle = await service.proof_of(db, row.id)
    content = json.dumps({"credential": presentation, "proof": bundle}, ensure_ascii=False, indent=2)
    headers = {
        "Content-Disposition": f'attachment; filename="credential-{row.id[:8]}.json"',
        "Cache-Control": "no-store",
    }
    return Response(content, media_type="application/json", headers=headers)
