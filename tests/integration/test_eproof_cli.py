"""`bauhinia eproof check-log` finds a log tampered with on disk; `bauhinia verify` checks a credential
offline against a trust file, and says revoked once the status list it was given says so."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from bauhinia.eproof.models import Credential
from bauhinia.sdk.sdjwt import present
from bauhinia.sdk.verifier import trust_from
from bauhinia.settings import Settings
from tests.conftest import PUBLIC_URL, TEST_SECRET
from tests.eproof_support import Departments, registered_departments
from tests.helpers import make_resident
from tests.integration.test_cli import env_for, invoke


@pytest.fixture
async def departments(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Departments:
    return await registered_departments(app, client, settings)


def cli_env(settings: Settings) -> dict[str, str]:
    """The CLI with the app's own secret and URL: the log's key and origin derive from them."""
    return env_for(settings) | {"BAUHINIA_SECRET_KEY": TEST_SECRET, "BAUHINIA_PUBLIC_URL": PUBLIC_URL}


async def issue_some(app: FastAPI, departments: Departments, count: int = 3) -> list[dict[str, object]]:
    resident = await make_resident(app)
    issued = []
    for _ in range(count):
        answer = await departments.issue(resident)
        assert answer.status_code == 201, answer.text
        issued.append(answer.json())
    return issued


@pytest.mark.parametrize(
    ("tampering", "finding"),
    [
        ('UPDATE eproof_log_entries SET entry = :bytes WHERE "index" = 1', "does not match the entries"),
        ('DELETE FROM eproof_log_entries WHERE "index" = 1', "entry 1 is missing"),
        ('DELETE FROM eproof_log_entries WHERE "index" = 2', "checkpoints"),
        ('UPDATE eproof_log_tiles SET hashes = :bytes WHERE level = 0 AND "index" = 0', "tile 0 does not match"),
        ("UPDATE eproof_checkpoints SET note = replace(note, 'eproof', 'eProof') WHERE size = 2", "does not verify"),
    ],
    ids=["entry changed", "entry removed", "last entry removed", "tile altered", "checkpoint altered"],
)
async def test_check_log_finds_a_log_tampered_with_on_disk(
    app: FastAPI, settings: Settings, departments: Departments, tampering: str, finding: str
) -> None:
    await issue_some(app, departments)
    clean = await invoke(["eproof", "check-log"], cli_env(settings))
    assert clean.exit_code == 0, clean.output
    assert "3 entries" in clean.output
    async with app.state.engine.begin() as connection:
        await connection.execute(text(tampering), {"bytes": bytes(96)} if ":bytes" in tampering else {})
    found = await invoke(["eproof", "check-log"], cli_env(settings))
    assert found.exit_code == 1, found.output
    assert finding in " ".join(found.output.split())


async def test_verify_offline_says_valid_then_revoked(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, departments: Departments, tmp_path: Path
) -> None:
    issued = (await issue_some(app, departments, 1))[0]

    async def fetch_trust_file() -> Path:
        document = (await client.get("/.well-known/bauhinia-eproof")).json()
        tokens = {
            uri: (await client.get(uri.removeprefix(PUBLIC_URL))).text for uri in document["status_lists"].values()
        }
        path = tmp_path / "trust.json"
        path.write_text(trust_from(document, tokens).to_json())
        return path

    async with app.state.sessionmaker() as db:
        row = await db.get(Credential, issued["id"])
        assert row is not None
        holder = await app.state.eproof.holder_key(db, row.resident_id)
    presentation = present(row.sd_jwt, {"name_zh": True}, holder_key=holder, audience="bank", nonce="n1")
    credential_file = tmp_path / "licence.json"
    credential_file.write_text(json.dumps({"credential": presentation, "proof": issued["proof"]}))
    printed_file = tmp_path / "printed.txt"
    printed_file.write_text(str(issued["printed"]))
    trust_file = await fetch_trust_file()
    arguments = ["verify", str(credential_file), "--trust", str(trust_file), "--audience", "bank", "--nonce", "n1"]

    valid = await invoke(arguments)
    assert valid.exit_code == 0, valid.output
    assert "VALID" in valid.output
    assert "測試家明" in valid.output
    printed = await invoke(["verify", str(printed_file), "--trust", str(trust_file)])
    assert printed.exit_code == 0, printed.output
    assert "not checked" in printed.output  # the code alone carries no log proof
    wrong_nonce = await invoke([*arguments[:-1], "n2"])
    assert wrong_nonce.exit_code == 1
    assert "kb_nonce_mismatch" in wrong_nonce.output

    assert (await departments.set_status(str(issued["id"]), "revoked")).status_code == 200
    stale = await invoke(arguments)
    assert stale.exit_code == 0  # offline, the trust file's status list is as fetched
    trust_file = await fetch_trust_file()
    revoked = await invoke(arguments)
    assert revoked.exit_code == 1, revoked.output
    assert "revoked" in revoked.output
    assert "NOT VALID" in revoked.output
    tampered = credential_file.read_text().replace("index ", "index 1")
    credential_file.write_text(tampered)
    assert (await invoke(arguments)).exit_code == 1


async def issuer_kid(app: FastAPI, credential_id: str) -> str:
    async with app.state.sessionmaker() as db:
        row = await db.get(Credential, credential_id)
        assert row is not None
        header = row.sd_jwt.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "==="))["kid"])


async def published_kids(client: httpx.AsyncClient, member: str) -> list[str]:
    document = (await client.get("/.well-known/bauhinia-eproof")).json()
    return [key["kid"] for key in document["issuers"][member]["jwks"]["keys"]]


async def test_rotating_an_issuers_key_publishes_it_first_then_signs_with_it(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, departments: Departments
) -> None:
    earlier = (await issue_some(app, departments, 1))[0]
    first_kid = await issuer_kid(app, str(earlier["id"]))

    later = await invoke(["eproof", "rotate-key", "HK/GOV/TD", "--activate-in", "3600"], cli_env(settings))
    assert later.exit_code == 0, later.output
    pending = json.loads(later.stdout)
    assert (pending["member"], pending["signing_in_seconds"]) == ("HK/GOV/TD", 3600)
    assert await published_kids(client, "HK/GOV/TD") == [first_kid, pending["kid"]]  # verifiers fetch it first
    still = (await issue_some(app, departments, 1))[0]
    assert await issuer_kid(app, str(still["id"])) == first_kid

    now = await invoke(["eproof", "rotate-key", "HK/GOV/TD", "--activate-in", "0"], cli_env(settings))
    assert now.exit_code == 0, now.output
    current = json.loads(now.stdout)["kid"]
    fresh = (await issue_some(app, departments, 1))[0]
    assert await issuer_kid(app, str(fresh["id"])) == current
    assert current in await published_kids(client, "HK/GOV/TD")
    assert first_kid in await published_kids(client, "HK/GOV/TD")  # what it signed lives on

    # The credential the retired key signed still verifies, and its status changes are signed anew.
    async with app.state.sessionmaker() as db:
        assert (await app.state.eproof.verify(db, str(earlier["printed"]))).valid
    assert (await departments.set_status(str(earlier["id"]), "revoked")).status_code == 200
    async with app.state.sessionmaker() as db:
        verdict = await app.state.eproof.verify(db, str(earlier["printed"]))
        assert verdict.outcomes["status"] == (False, "revoked")
        assert verdict.outcomes["signature"] == (True, "")
        assert (await app.state.eproof.verify(db, str(fresh["printed"]))).valid
        rotated = "SELECT subject FROM audit_events WHERE event_type = 'eproof.issuer_key_rotated'"
        events = await db.execute(text(rotated))
        assert [row[0] for row in events] == ["eproof-issuer:HK/GOV/TD"] * 2

    unknown = await invoke(["eproof", "rotate-key", "HK/GOV/XX"], cli_env(settings))
    assert unknown.exit_code == 1
    assert "HK/GOV/XX has no issuing key" in unknown.output
