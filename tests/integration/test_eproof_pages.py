"""e-Proof's pages: the public verification page (a pasted code, a photo of the code, a credential file,
in three languages; revoked and forged credentials said so) and the resident's wallet (cards, QR code,
a presentation of chosen claims that verifies)."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
import segno
from fastapi import FastAPI

from bauhinia.core.i18n import LANGUAGE_COOKIE
from bauhinia.settings import Settings
from tests.eproof_support import LICENCE, Departments, registered_departments
from tests.helpers import TestResident, csrf_from, make_resident, sign_in
from tests.integration.support import open_client, title_of


@pytest.fixture
async def departments(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Departments:
    return await registered_departments(app, client, settings)


async def issued_to(app: FastAPI, departments: Departments) -> tuple[TestResident, dict[str, str]]:
    resident = await make_resident(app)
    answer = await departments.issue(resident)
    assert answer.status_code == 201, answer.text
    return resident, answer.json()


async def check(
    app: FastAPI, *, code: str | None = None, file: tuple[str, bytes, str] | None = None, language: str = "en"
) -> httpx.Response:
    async with open_client(app) as browser:
        browser.cookies.set(LANGUAGE_COOKIE, language)
        token = await csrf_from(browser, "/verify")
        return await browser.post(
            "/verify",
            data={"csrf_token": token, "code": code or ""},
            files={"file": file} if file else {"file": ("", b"", "application/octet-stream")},
        )


def checks_of(page: str) -> dict[str, bool]:
    return {m[0]: m[1] == "true" for m in re.findall(r'data-check="(\w+)" data-passed="(\w+)"', page)}


async def test_a_pasted_code_is_valid_and_says_who_issued_what_to_whom(app: FastAPI, departments: Departments) -> None:
    _, issued = await issued_to(app, departments)
    page = await check(app, code=issued["printed"])
    assert page.status_code == 200
    assert 'data-valid="true"' in page.text
    assert checks_of(page.text) == {"signature": True, "log": True, "status": True, "validity": True}
    assert "Transport Department" in page.text
    assert "Full driving licence" in page.text
    assert LICENCE["name_zh"] in page.text
    assert title_of(page.text).startswith("Valid")


async def test_a_photo_of_the_code_and_a_credential_file_are_read(app: FastAPI, departments: Departments) -> None:
    _, issued = await issued_to(app, departments)
    photo = io.BytesIO()
    segno.make(issued["printed"], error="m", mode="alphanumeric").save(photo, kind="png", scale=5)
    page = await check(app, file=("licence.png", photo.getvalue(), "image/png"))
    assert 'data-valid="true"' in page.text, page.text[:2000]
    blank = io.BytesIO()
    segno.make_qr("hello", error="m").save(blank, kind="png", scale=5)
    not_ours = await check(app, file=("other.png", blank.getvalue(), "image/png"))
    assert 'data-valid="false"' in not_ours.text
    no_code = await check(app, file=("nothing.png", b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png"))
    assert no_code.status_code == 422
    assert "could not be read" in no_code.text
    assert (await check(app)).status_code == 422
    big_photo = io.BytesIO()  # a phone's photo is megabytes: far above other forms' limit
    segno.make(issued["printed"], error="m", mode="alphanumeric").save(big_photo, kind="png", scale=5)
    padded = big_photo.getvalue() + bytes(2 * 1024 * 1024)  # PNG readers stop at IEND
    assert 'data-valid="true"' in (await check(app, file=("big.png", padded, "image/png"))).text
    too_big = await check(app, file=("huge.png", b"\x89PNG" + bytes(5 * 1024 * 1024 + 10), "image/png"))
    assert too_big.status_code == 422
    assert "too large" in too_big.text


async def test_revoked_and_forged_credentials_are_not_valid_in_every_language(
    app: FastAPI, departments: Departments
) -> None:
    _, issued = await issued_to(app, departments)
    forged = issued["printed"][:-6] + ("AAAAAA" if not issued["printed"].endswith("AAAAAA") else "BBBBBB")
    page = await check(app, code=forged)
    assert 'data-valid="false"' in page.text
    assert (await departments.set_status(issued["id"], "revoked")).status_code == 200
    for language, words in (
        ("en", "The issuer has revoked it."),
        ("zh-Hant", "簽發機構已撤銷這份證明。"),
        ("zh-Hans", "签发机构已撤销这份证明。"),
    ):
        revoked = await check(app, code=issued["printed"], language=language)
        assert 'data-valid="false"' in revoked.text
        assert checks_of(revoked.text)["status"] is False
        assert words in revoked.text


async def test_the_wallet_shows_the_card_and_its_code_and_shares_only_chosen_claims(
    app: FastAPI, departments: Departments
) -> None:
    resident, issued = await issued_to(app, departments)
    async with open_client(app) as browser:
        await sign_in(browser, resident)
        listing = await browser.get("/account/wallet")
        assert listing.status_code == 200
        assert f'data-credential="{issued["id"]}"' in listing.text
        card = await browser.get(f"/account/wallet/{issued['id']}")
        assert card.status_code == 200
        assert 'id="qr" src="data:image/svg+xml;base64,' in card.text
        assert issued["printed"] in card.text
        token = await csrf_from(browser, f"/account/wallet/{issued['id']}")
        shared = await browser.post(
            f"/account/wallet/{issued['id']}/present",
            data={"csrf_token": token, "claim": ["name_zh"], "audience": "Harbour Bank", "nonce": "n-42"},
        )
        assert shared.status_code == 200
        assert shared.headers["content-disposition"].startswith("attachment")
        credential_file = shared.json()
        assert (await browser.get("/account/wallet/00000000-0000-4000-8000-000000000000")).status_code == 404
    page = await check(app, code=json.dumps(credential_file))
    assert 'data-valid="true"' in page.text
    assert checks_of(page.text)["holder"] is True
    assert LICENCE["name_zh"] in page.text
    assert LICENCE["licence_number"] not in page.text  # selective and not chosen
    someone_else = await make_resident(app)
    async with open_client(app) as browser:
        await sign_in(browser, someone_else)
        assert (await browser.get(f"/account/wallet/{issued['id']}")).status_code == 404
