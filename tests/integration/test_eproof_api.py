"""e-Proof over HTTP: operators register types, departments issue and revoke through their own
clients, and everything a verifier needs is public — checked with the SDK's verifiers only, from the
discovery document's keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import select

from bauhinia.eproof.demo import TYPES
from bauhinia.eproof.models import Credential, LogEntry
from bauhinia.sdk import printed
from bauhinia.sdk.sdjwt import credential_digest, present, verify_sd_jwt
from bauhinia.sdk.status_list import status_reference, verify_status_list_token
from bauhinia.sdk.transparency import (
    NoteVerifier,
    leaf_hash,
    parse_entry_bundle,
    parse_proof_bundle,
    tree_root,
    verify_checkpoint,
    verify_consistency,
    verify_proof_bundle,
)
from bauhinia.settings import Settings
from tests.eproof_support import LICENCE, Departments, registered_departments
from tests.helpers import make_resident


@pytest.fixture
async def departments(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Departments:
    return await registered_departments(app, client, settings)


async def discovered(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/.well-known/bauhinia-eproof")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


async def test_an_issued_credential_verifies_in_both_forms_from_public_keys_only(
    app: FastAPI, client: httpx.AsyncClient, departments: Departments
) -> None:
    resident = await make_resident(app)
    answer = await departments.issue(resident)
    assert answer.status_code == 201, answer.text
    issued = answer.json()
    document = await discovered(client)
    assert {t["id"] for t in document["credential_types"]} == {t["id"] for t in TYPES}
    issuer_keys = KeySet.import_key_set(document["issuers"]["HK/GOV/TD"]["jwks"])
    log_key = NoteVerifier.from_vkey(document["log"]["vkey"])

    # The wallet's SD-JWT, presented with key binding from the resident's wallet key.
    async with app.state.sessionmaker() as db:
        row = await db.get(Credential, issued["id"])
        assert row is not None
        holder = await app.state.eproof.holder_key(db, resident.id)
    presentation = present(row.sd_jwt, {"name_zh": True}, holder_key=holder, audience="bank", nonce="n1")
    verified = verify_sd_jwt(presentation, issuer_keys, require_key_binding=True, audience="bank", nonce="n1")
    assert verified.claims["name_zh"] == LICENCE["name_zh"]
    assert "licence_number" not in verified.claims  # selective, and not chosen
    assert verified.claims["classes"] == ["1"]

    # Its log entry: a digest, no claim; the proof bundle verifies offline against the pinned vkey.
    bundle = parse_proof_bundle(issued["proof"])
    assert bundle.extra is not None
    entry = json.loads(bundle.extra)
    assert entry["sd_jwt"] == credential_digest(presentation)
    assert str(LICENCE["name_en"]) not in bundle.extra.decode()
    verify_proof_bundle(issued["proof"], bundle.extra, log_key)

    # The printed form, with the issuer's key from the same JWKS.
    jwk = ECKey.import_key(document["issuers"]["HK/GOV/TD"]["jwks"]["keys"][0])
    public = jwk.public_key
    assert isinstance(public, ec.EllipticCurvePublicKey)
    decoded = printed.decode_printed(issued["printed"], {printed.key_id(public): public})
    assert decoded.claims["licence_number"] == LICENCE["licence_number"]
    assert decoded.credential_id == issued["id"]

    # Its status: valid in the published list.
    uri, index = status_reference(verified.claims)
    listed = await client.get(uri.removeprefix("http://localhost:8000"))
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/statuslist+jwt"
    assert verify_status_list_token(listed.text, issuer_keys, uri).get(index) == 0


async def test_revocation_and_suspension_show_in_the_status_list_and_the_log(
    app: FastAPI, client: httpx.AsyncClient, departments: Departments
) -> None:
    resident = await make_resident(app)
    issued = (await departments.issue(resident)).json()
    issuer_keys = KeySet.import_key_set((await discovered(client))["issuers"]["HK/GOV/TD"]["jwks"])
    async with app.state.sessionmaker() as db:
        row = await db.get(Credential, issued["id"])
        assert row is not None
    uri, index = status_reference(verify_sd_jwt(row.sd_jwt, issuer_keys).claims)
    path = uri.removeprefix("http://localhost:8000")

    async def listed_status() -> int:
        return verify_status_list_token((await client.get(path)).text, issuer_keys, uri).get(index)

    assert (await departments.set_status(issued["id"], "suspended")).json() == {"status": "suspended"}
    assert await listed_status() == 2
    assert (await departments.set_status(issued["id"], "valid")).json() == {"status": "valid"}
    assert await listed_status() == 0
    assert (await departments.set_status(issued["id"], "revoked")).status_code == 200
    assert await listed_status() == 1
    final = await departments.set_status(issued["id"], "valid")
    assert final.status_code == 409
    assert final.headers["content-type"] == "application/problem+json"
    async with app.state.sessionmaker() as db:
        events = [json.loads(e)["event"] for e in await db.scalars(select(LogEntry.entry).order_by(LogEntry.index))]
    assert events[-4:] == ["issued", "suspended", "reinstated", "revoked"]


async def test_only_the_issuing_department_may_issue_or_change_and_bad_requests_are_problems(
    app: FastAPI, departments: Departments
) -> None:
    resident = await make_resident(app)
    issued = (await departments.issue(resident)).json()
    body = {"type": "td.driving-licence", "holder": {"identity_number": resident.id_number}, "claims": LICENCE}
    foreign = await departments.http.post(
        "/api/eproof/credentials", json=body, headers=await departments.headers("ird-backend")
    )
    assert foreign.status_code == 403
    assert (await departments.set_status(issued["id"], "revoked", client="ird-backend")).status_code == 404
    wrong_claims = await departments.issue(resident, {**LICENCE, "classes": "1"})
    assert wrong_claims.status_code == 422
    assert wrong_claims.json()["errors"][0]["location"] == ["body", "claims", "classes"]
    nobody = await departments.issue(resident, holder={"identity_number": "Z999999(9)"})
    assert nobody.status_code == 422
    unknown_type = await departments.issue(resident, type="td.unknown-thing")
    assert unknown_type.status_code == 422
    unauthenticated = await departments.http.post("/api/eproof/credentials", json=body)
    assert unauthenticated.status_code == 401
    for junk in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "a%00b"):
        assert (await departments.set_status(junk, "revoked")).status_code == 404


async def test_the_log_is_served_as_tlog_tiles_with_consistent_checkpoints(
    app: FastAPI, client: httpx.AsyncClient, departments: Departments
) -> None:
    resident = await make_resident(app)
    for _ in range(3):
        assert (await departments.issue(resident)).status_code == 201
    document = await discovered(client)
    log_key = NoteVerifier.from_vkey(document["log"]["vkey"])
    note = await client.get("/eproof/log/checkpoint")
    checkpoint, _ = verify_checkpoint(note.text, log_key)
    assert checkpoint.size == 3
    assert checkpoint.origin == document["log"]["origin"]
    tile = await client.get("/eproof/log/tile/0/000.p/3")
    assert tile.status_code == 200
    assert len(tile.content) == 3 * 32
    assert tile.headers["cache-control"].endswith("immutable")
    entries = await client.get("/eproof/log/tile/entries/000.p/3")
    assert entries.status_code == 200
    # A monitor that reads every entry rebuilds the checkpoint's root, and sees no personal data.
    read = parse_entry_bundle(entries.content, 3)
    assert tree_root([leaf_hash(e) for e in read]) == checkpoint.root
    assert [json.loads(e)["event"] for e in read] == ["issued"] * 3
    assert (await client.get("/eproof/log/tile/0/000.p/4")).status_code == 404
    assert (await client.get("/eproof/log/tile/0/1")).status_code == 404
    proof = (await client.get("/eproof/log/consistency", params={"from": 1, "to": 3})).json()["proof"]
    async with app.state.sessionmaker() as db:
        first = await app.state.eproof.log.checkpoint(db, 1)
    old, _ = verify_checkpoint(first, log_key)
    verify_consistency(1, 3, old.root, checkpoint.root, [base64.b64decode(h) for h in proof])
    assert (await client.get("/eproof/log/consistency", params={"from": 2, "to": 9})).status_code == 422
