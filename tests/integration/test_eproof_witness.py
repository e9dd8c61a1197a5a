"""Witnesses: the demo's cross-boundary partner cosigns checkpoints only when each extends the last one
it saw, the log keeps only verifying cosignatures by witnesses it accepts, and verifiers see them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from bauhinia.demo.witness import PartnerWitness, WitnessRefusal
from bauhinia.sdk.transparency import (
    COSIGNATURE_ED25519,
    NoteSigner,
    NoteVerifier,
    verify_checkpoint,
    verify_cosignature,
)
from bauhinia.sdk.verifier import trust_from, verify
from bauhinia.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.eproof_support import Departments, registered_departments
from tests.helpers import make_resident


@pytest.fixture
async def departments(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Departments:
    return await registered_departments(app, client, settings)


@pytest.fixture
async def witness(app: FastAPI, settings: Settings) -> PartnerWitness:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL)
    return PartnerWitness(Path(settings.data_dir), PUBLIC_URL, http)


async def test_the_partner_cosigns_consistent_checkpoints_and_verifiers_see_it(
    app: FastAPI, client: httpx.AsyncClient, departments: Departments, witness: PartnerWitness
) -> None:
    resident = await make_resident(app)
    assert await witness.cosign_latest() is None  # an empty log: nothing to cosign
    issued = (await departments.issue(resident)).json()
    await departments.issue(resident)
    assert await witness.cosign_latest() == 2
    document = (await client.get("/.well-known/bauhinia-eproof")).json()
    assert [w["name"] for w in document["witnesses"]] == ["partner.example.org/witness"]
    note = (await client.get("/eproof/log/checkpoint")).text
    _, parsed = verify_checkpoint(note, NoteVerifier.from_vkey(document["log"]["vkey"]))
    assert verify_cosignature(parsed, NoteVerifier.from_vkey(document["witnesses"][0]["vkey"])) > 0

    await departments.issue(resident)
    assert await witness.cosign_latest() == 3  # after checking the consistency proof from 2 to 3

    proof = (await client.get(f"/eproof/credentials/{issued['id']}/proof")).text
    tokens = {u: (await client.get(u.removeprefix(PUBLIC_URL))).text for u in document["status_lists"].values()}
    trust = trust_from((await client.get("/.well-known/bauhinia-eproof")).json(), tokens)
    verdict = verify(json.dumps({"credential": issued["printed"], "proof": proof}), trust)
    assert verdict.valid
    assert set(verdict.witnessed) == {"partner.example.org/witness"}
    await witness.http.aclose()


async def test_the_partner_refuses_a_log_that_forks_or_shrinks(
    app: FastAPI, departments: Departments, witness: PartnerWitness, settings: Settings
) -> None:
    resident = await make_resident(app)
    await departments.issue(resident)
    assert await witness.cosign_latest() == 1
    state = Path(settings.data_dir) / "witness" / "partner-state.json"
    state.write_text(json.dumps({"size": 1, "root": base64.b64encode(bytes(32)).decode()}))  # saw another tree
    with pytest.raises(WitnessRefusal, match="fork"):
        await witness.cosign_latest()
    state.write_text(json.dumps({"size": 5, "root": base64.b64encode(bytes(32)).decode()}))
    with pytest.raises(WitnessRefusal, match="shrank"):
        await witness.cosign_latest()
    await departments.issue(resident)
    state.write_text(json.dumps({"size": 1, "root": base64.b64encode(bytes(32)).decode()}))
    with pytest.raises(WitnessRefusal, match="does not extend"):
        await witness.cosign_latest()
    await witness.http.aclose()


async def test_the_log_keeps_only_verifying_cosignatures_by_accepted_witnesses(
    app: FastAPI, client: httpx.AsyncClient, departments: Departments, witness: PartnerWitness
) -> None:
    await departments.issue(await make_resident(app))
    async with app.state.sessionmaker() as db:
        text = verify_checkpoint(await app.state.eproof.log.checkpoint(db), app.state.eproof.log.signer.verifier)[
            1
        ].text
    stranger = NoteSigner("stranger.example/witness", Ed25519PrivateKey.generate(), COSIGNATURE_ED25519)
    unknown = await client.post(
        "/eproof/log/cosignatures", json={"size": 1, "cosignature": stranger.cosignature_line(text, 1)}
    )
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    impostor = NoteSigner(witness.signer.name, Ed25519PrivateKey.generate(), COSIGNATURE_ED25519)
    forged = await client.post(
        "/eproof/log/cosignatures", json={"size": 1, "cosignature": impostor.cosignature_line(text, 1)}
    )
    assert forged.status_code == 422
    other_text = text.replace("\n1\n", "\n2\n")
    moved = await client.post(
        "/eproof/log/cosignatures", json={"size": 1, "cosignature": witness.signer.cosignature_line(other_text, 1)}
    )
    assert moved.status_code == 422
    for junk in (
        {"size": 99, "cosignature": "— x AAAA"},
        {"size": 1, "cosignature": "not a line"},
        {"size": 0, "cosignature": ""},
    ):
        answer = await client.post("/eproof/log/cosignatures", json=junk, headers={"accept": "application/json"})
        assert answer.status_code == 422
    good = await client.post(
        "/eproof/log/cosignatures", json={"size": 1, "cosignature": witness.signer.cosignature_line(text, 7)}
    )
    assert good.status_code == 201
    assert good.json() == {"size": 1, "witness": "partner.example.org/witness"}
    again = await client.post(
        "/eproof/log/cosignatures", json={"size": 1, "cosignature": witness.signer.cosignature_line(text, 8)}
    )
    assert again.status_code == 201  # a newer cosignature replaces the older
    assert (await client.get("/eproof/log/checkpoint")).text.count("partner.example.org/witness") == 1
    replayed = await client.post(
        "/eproof/log/cosignatures", json={"size": 1, "cosignature": witness.signer.cosignature_line(text, 7)}
    )
    assert replayed.status_code == 422  # anyone could otherwise put an older one back
    assert "not newer" in replayed.json()["detail"]
    served = (await client.get("/eproof/log/checkpoint")).text
    assert witness.signer.cosignature_line(text, 8) in served
    await witness.http.aclose()


async def test_a_genuine_cosignature_cannot_carry_a_second_line(
    app: FastAPI, client: httpx.AsyncClient, departments: Departments, witness: PartnerWitness
) -> None:
    """The attack: copy a witness's genuine line and append a line of one's own, which the log would
    then serve beside its checkpoint as if it had been checked."""
    await departments.issue(await make_resident(app))
    async with app.state.sessionmaker() as db:
        note = await app.state.eproof.log.checkpoint(db)
    text = verify_checkpoint(note, app.state.eproof.log.signer.verifier)[1].text
    genuine = witness.signer.cosignature_line(text, 7).rstrip("\n")
    stranger = NoteSigner("stranger.example/witness", Ed25519PrivateKey.generate(), COSIGNATURE_ED25519)
    for smuggled in (
        genuine + "\n" + stranger.cosignature_line(text, 7),
        stranger.cosignature_line(text, 7) + genuine,
        genuine + "\n\n" + stranger.cosignature_line(text, 7),
        genuine + "\r",
    ):
        answer = await client.post("/eproof/log/cosignatures", json={"size": 1, "cosignature": smuggled})
        assert answer.status_code == 422, smuggled
        assert answer.json()["detail"].startswith("A cosignature is one line")
    served = (await client.get("/eproof/log/checkpoint")).text
    assert "stranger.example" not in served
    assert (await client.post("/eproof/log/cosignatures", json={"size": 1, "cosignature": genuine})).status_code == 201
    await witness.http.aclose()
