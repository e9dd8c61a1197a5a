"""The counter: strong staff sign-in, in-person identity checks, unlocking, and reset codes."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

import tests.helpers as h
from bauhinia.core.audit import AuditEvent
from bauhinia.identity import totp
from bauhinia.identity.models import (
    AccountResetCode,
    Authenticator,
    IdentityVerification,
    Resident,
    SignInThrottle,
    StaffMember,
)
from tests.helpers import make_resident, next_code, sign_in
from tests.integration.support import (
    STAFF_COOKIE,
    StaffAccount,
    audit_types,
    count,
    field_error,
    issue_reset_code,
    make_staff,
    open_client,
    post_form,
    require,
    reset_code_on,
    staff_sign_in,
    summary_errors,
    title_of,
    wrong_code,
)

STAFF_WRONG = "The username, password or code is wrong."
MISMATCH = "The number on the card does not match this account. Do not verify."


async def officer_client(app: FastAPI, client: httpx.AsyncClient) -> StaffAccount:
    staff = await make_staff(app)
    response = await staff_sign_in(client, staff)
    assert response.status_code == 303, response.text[:300]
    assert response.headers["location"] == "/staff"
    return staff


async def verify(
    client: httpx.AsyncClient, resident_id: str, number: str, location: str = "Wan Chai counter 3"
) -> httpx.Response:
    return await post_form(
        client,
        f"/staff/residents/{resident_id}/verify",
        {"id_number": number, "channel": "counter", "document": "hkid-card", "location": location},
        token_from=f"/staff/residents/{resident_id}",
    )


async def followed(client: httpx.AsyncClient, response: httpx.Response, notice: str) -> httpx.Response:
    """An action answers 303 to the resident's page (post/redirect/get); load that page."""
    assert response.status_code == 303, response.text[:300]
    assert response.headers["location"].endswith(f"?notice={notice}")
    return await client.get(response.headers["location"])


async def assurance(app: FastAPI, resident_id: str) -> str:
    async with app.state.sessionmaker() as db:
        resident = await db.get(Resident, resident_id)
        assert resident is not None
        return str(resident.assurance_level)


# --- staff sign-in ----------------------------------------------------------------------------------


async def test_staff_sign_in_needs_password_and_code(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    no_code = await post_form(client, "/staff/signin", {"username": staff.username, "password": staff.password})
    assert no_code.status_code == 400
    assert field_error(no_code.text, "username") == (
        "Enter your username, password and the code from your authenticator app."
    )

    bad_code = await staff_sign_in(client, staff, code=wrong_code(staff.totp_secret))
    assert bad_code.status_code == 400
    assert field_error(bad_code.text, "username") == STAFF_WRONG

    bad_password = await post_form(
        client,
        "/staff/signin",
        {"username": staff.username, "password": "wrong password!", "code": totp.current_code(staff.totp_secret)},
    )
    assert field_error(bad_password.text, "username") == STAFF_WRONG

    unknown = await post_form(
        client,
        "/staff/signin",
        {"username": "nobody", "password": staff.password, "code": totp.current_code(staff.totp_secret)},
    )
    assert field_error(unknown.text, "username") == STAFF_WRONG
    assert (await client.get("/staff")).status_code == 303

    ok = await staff_sign_in(client, staff)
    assert ok.status_code == 303
    home = await client.get("/staff")
    assert home.status_code == 200
    assert title_of(home.text)
    types = await audit_types(app)
    assert types.count("staff.sign_in.failed") == 3
    assert types[-1] == "staff.sign_in.succeeded"


async def test_a_staff_code_is_good_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    code = totp.current_code(staff.totp_secret)
    assert (await staff_sign_in(client, staff, code)).status_code == 303
    async with open_client(app) as other:
        replay = await staff_sign_in(other, staff, code)
    assert replay.status_code == 400
    assert field_error(replay.text, "username") == STAFF_WRONG


async def test_five_staff_failures_lock_the_staff_account(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    for _ in range(5):
        await staff_sign_in(client, staff, code=wrong_code(staff.totp_secret))
    locked = await staff_sign_in(client, staff)
    assert locked.status_code == 400
    assert "Too many failed attempts" in field_error(locked.text, "username")


async def test_a_disabled_staff_member_cannot_sign_in(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    async with app.state.sessionmaker() as db:
        row = await db.get(StaffMember, staff.id)
        assert row is not None
        row.disabled = True
        await db.commit()
    response = await staff_sign_in(client, staff)
    assert field_error(response.text, "username") == STAFF_WRONG


async def test_disabling_a_staff_member_ends_their_access(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await officer_client(app, client)
    async with app.state.sessionmaker() as db:
        row = await db.get(StaffMember, staff.id)
        assert row is not None
        row.disabled = True
        await db.commit()
    assert (await client.get("/staff")).headers["location"] == "/staff/signin?next=%2Fstaff"


async def test_staff_without_a_counter_role_are_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    staff = await make_staff(app)
    async with app.state.sessionmaker() as db:
        row = await db.get(StaffMember, staff.id)
        assert row is not None
        row.roles = []
        await db.commit()
    assert (await staff_sign_in(client, staff)).status_code == 303
    response = await client.get("/staff")
    assert response.status_code == 403
    assert title_of(response.text)


async def test_staff_sign_out(app: FastAPI, client: httpx.AsyncClient) -> None:
    await officer_client(app, client)
    response = await post_form(client, "/staff/signout", {}, token_from="/staff")
    assert response.status_code == 303
    assert (await client.get("/staff")).status_code == 303


async def test_unknown_staff_roles_are_refused(app: FastAPI) -> None:
    from bauhinia.identity.service import IdentityError

    async with app.state.sessionmaker() as db:
        with pytest.raises(IdentityError):
            await app.state.identity.create_staff(db, "x", "X", ["superuser"], h.STRONG_PASSWORD, totp.new_secret())
        with pytest.raises(IdentityError):
            await app.state.identity.create_staff(db, "x", "X", [], h.STRONG_PASSWORD, totp.new_secret())
    assert await count(app, StaffMember) == 0


# --- residents and staff do not share sessions -------------------------------------------------------


async def test_a_resident_session_does_not_open_staff_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    assert (await client.get("/account")).status_code == 200
    staff_home = await client.get("/staff")
    assert staff_home.status_code == 303
    assert staff_home.headers["location"].startswith("/staff/signin")
    page = await client.get(f"/staff/residents/{who.id}")
    assert page.headers["location"].startswith("/staff/signin")


async def test_a_staff_session_does_not_open_resident_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    await officer_client(app, client)
    assert (await client.get("/staff")).status_code == 200
    for path in ("/account", "/account/setup", "/account/totp", "/account/password"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/signin"), path


async def test_a_resident_cookie_renamed_as_a_staff_cookie_is_useless(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await sign_in(client, who)
    resident_cookie = require(client.cookies.get("__Host-bauhinia_resident"))
    async with open_client(app) as other:
        header = f"{STAFF_COOKIE}={resident_cookie}".encode()
        response = await other.get("/staff", headers=[(b"cookie", header)])
    assert response.status_code == 303


# --- verifying identity in person --------------------------------------------------------------------


async def test_an_officer_verifies_a_residents_identity(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    staff = await officer_client(app, client)

    found = await client.get("/staff", params={"q": who.id_number.lower()})
    assert found.status_code == 303
    assert found.headers["location"] == f"/staff/residents/{who.id}"
    by_email = await client.get("/staff", params={"q": who.email.upper()})
    assert by_email.headers["location"] == f"/staff/residents/{who.id}"

    response = await followed(
        client, await verify(client, who.id, who.id_number.replace("(", " (").lower()), "verified"
    )
    assert response.status_code == 200
    assert "Identity verified." in response.text
    assert await assurance(app, who.id) == "verified"
    async with app.state.sessionmaker() as db:
        record = (await db.scalars(select(IdentityVerification))).one()
        event = (await db.scalars(select(AuditEvent).where(AuditEvent.event_type == "identity.verified"))).one()
    assert (record.resident_id, record.staff_id, record.channel, record.document, record.location) == (
        who.id,
        staff.id,
        "counter",
        "hkid-card",
        "Wan Chai counter 3",
    )
    assert event.actor == f"staff:{staff.id}"
    assert event.subject == f"resident:{who.id}"


async def test_a_mismatching_number_is_refused_and_audited(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    someone_else = h.id_number("A", "123456")
    await officer_client(app, client)

    response = await verify(client, who.id, someone_else)
    assert response.status_code == 400
    assert field_error(response.text, "id_number") == MISMATCH
    assert await assurance(app, who.id) == "basic"
    assert await count(app, IdentityVerification) == 0
    assert "identity.verification_mismatch" in await audit_types(app)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"id_number": "A123456(4)"}, "id_number", "The check digit"),
        ({"id_number": ""}, "id_number", "Enter the identity card number as printed"),
        ({"location": ""}, "location", "Enter the counter or kiosk"),
        ({"location": "x" * 150}, "location", "Enter the counter or kiosk"),
        ({"channel": "telepathy"}, "channel", "Select how and where"),
        ({"document": "library-card"}, "channel", "Select how and where"),
    ],
)
async def test_incomplete_checks_are_refused(
    app: FastAPI, client: httpx.AsyncClient, changes: dict[str, str], field: str, message: str
) -> None:
    who = await make_resident(app)
    await officer_client(app, client)
    form = {"id_number": who.id_number, "channel": "counter", "document": "hkid-card", "location": "Counter 1"}
    form.update(changes)
    response = await post_form(
        client, f"/staff/residents/{who.id}/verify", form, token_from=f"/staff/residents/{who.id}"
    )
    assert response.status_code == 400
    assert field_error(response.text, field).startswith(message) or any(
        m.startswith(message) for m in summary_errors(response.text)
    )
    assert await assurance(app, who.id) == "basic"
    assert await count(app, IdentityVerification) == 0


async def test_verifying_a_minor_confirms_the_guardian(app: FastAPI, client: httpx.AsyncClient) -> None:
    from datetime import UTC, datetime

    from bauhinia.identity.models import GuardianConsent
    from bauhinia.identity.schemas import RegistrationInput, ValidRegistration, validate_registration

    today = datetime.now(UTC).date()
    number = h.id_number("M", "246810")
    form = RegistrationInput(
        english_surname="Lee",
        english_given_names="Siu Fung",
        id_number=number,
        dob_day="1",
        dob_month="1",
        dob_year=str(today.year - 14),
        gender="F",
        email="siu.fung@example.hk",
        password=h.STRONG_PASSWORD,
        guardian_name="Lee Ka Yan",
        guardian_id_number=h.id_number("N", "135791"),
        guardian_relationship="guardian",
        guardian_declaration="yes",
    )
    checked = validate_registration(form, today)
    assert isinstance(checked, ValidRegistration)
    async with app.state.sessionmaker() as db:
        minor = await app.state.identity.register(db, checked, language="en", client="test", today=today)
    staff = await officer_client(app, client)
    assert (await verify(client, minor.id, number)).status_code == 303
    async with app.state.sessionmaker() as db:
        consent = (await db.scalars(select(GuardianConsent))).one()
    assert consent.confirmed_by_staff_id == staff.id


async def test_an_unknown_resident_page_is_404(app: FastAPI, client: httpx.AsyncClient) -> None:
    await officer_client(app, client)
    assert (await client.get("/staff/residents/00000000-0000-0000-0000-000000000000")).status_code == 404
    search = await client.get("/staff", params={"q": "nobody@example.hk"})
    assert search.status_code == 200


# --- helping a locked-out resident ----------------------------------------------------------------------


async def test_unlock_clears_a_lockout(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app, with_totp=False)
    async with open_client(app, "198.51.100.30") as resident:
        for _ in range(5):
            await post_form(resident, "/signin", {"email": who.email, "password": "wrong password!!"})
        locked = await post_form(resident, "/signin", {"email": who.email, "password": who.password})
        assert "Too many failed attempts" in field_error(locked.text, "email")

        await officer_client(app, client)
        page = await client.get(f"/staff/residents/{who.id}")
        assert "Locked after failed attempts" in page.text
        unlocked = await post_form(
            client, f"/staff/residents/{who.id}/unlock", {}, token_from=f"/staff/residents/{who.id}"
        )
        unlocked = await followed(client, unlocked, "unlocked")
        assert unlocked.status_code == 200
        assert "Sign-in is unlocked." in unlocked.text
        assert "staff.unlocked_account" in await audit_types(app)

        again = await post_form(resident, "/signin", {"email": who.email, "password": who.password})
        assert again.status_code == 303


async def test_unlocking_an_unknown_resident_changes_and_records_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await officer_client(app, client)
    before = await audit_types(app)
    token_page = "/staff"
    response = await post_form(
        client, "/staff/residents/00000000-0000-0000-0000-000000000000/unlock", {}, token_from=token_page
    )
    assert response.status_code == 404
    assert await audit_types(app) == before


async def test_a_reset_code_lets_a_resident_start_again(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Lost phone and forgotten password: an officer checks the card and gives a one-time code."""
    who = await make_resident(app)
    staff = await officer_client(app, client)
    issued = await post_form(
        client, f"/staff/residents/{who.id}/reset-code", {}, token_from=f"/staff/residents/{who.id}"
    )
    issued = await followed(client, issued, "reset-code")
    assert issued.status_code == 200
    code = reset_code_on(issued.text)
    # Shown once: reloading the page does not show it again, nor issue another.
    reloaded = await client.get(f"/staff/residents/{who.id}?notice=reset-code")
    assert code not in reloaded.text
    assert 'id="reset-code"' not in reloaded.text
    async with app.state.sessionmaker() as db:
        stored = (await db.scalars(select(AccountResetCode))).one()
    assert stored.issued_by_staff_id == staff.id
    assert code not in stored.code_hash

    async with open_client(app, "198.51.100.40") as resident:
        recovered = await post_form(resident, "/recover", {"email": who.email, "code": code})
        assert recovered.status_code == 303
        assert recovered.headers["location"] == "/account/password"

        # A restricted session: nothing but choosing a password and a strong method.
        assert (await resident.get("/account")).headers["location"] == "/account/setup"
        form = await resident.get("/account/password")
        assert form.status_code == 200
        assert 'name="current_password"' not in form.text  # the forgotten password is not asked for
        new_password = "amber ferry kite orchard"
        chosen = await post_form(resident, "/account/password", {"new_password": new_password})
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/account/setup"
        assert (await resident.get("/account")).headers["location"] == "/account/setup"

    async with app.state.sessionmaker() as db:
        kinds = sorted((await db.scalars(select(Authenticator.kind).where(Authenticator.resident_id == who.id))).all())
    assert kinds == ["password"]  # the old app and recovery codes are gone; the password is new
    assert "account.recovered" in await audit_types(app)

    # The old password no longer works; the new one does.
    async with open_client(app, "198.51.100.41") as later:
        old = await post_form(later, "/signin", {"email": who.email, "password": who.password})
        assert old.status_code == 400
        new = await post_form(later, "/signin", {"email": who.email, "password": new_password})
        assert new.status_code == 303


async def test_a_reset_code_works_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await officer_client(app, client)
    code = await issue_reset_code(client, f"/staff/residents/{who.id}")
    async with open_client(app, "198.51.100.50") as resident:
        assert (await post_form(resident, "/recover", {"email": who.email, "code": code})).status_code == 303
    async with open_client(app, "198.51.100.51") as attacker:
        again = await post_form(attacker, "/recover", {"email": who.email, "code": code})
    assert again.status_code == 400
    assert field_error(again.text, "email") == "The email address or reset code is wrong, or the code has expired."


async def test_a_new_reset_code_replaces_the_old_one(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await officer_client(app, client)
    page = f"/staff/residents/{who.id}"
    first = await issue_reset_code(client, page)
    second = await issue_reset_code(client, page)
    async with open_client(app, "198.51.100.52") as resident:
        assert (await post_form(resident, "/recover", {"email": who.email, "code": first})).status_code == 400
        assert (await post_form(resident, "/recover", {"email": who.email, "code": second})).status_code == 303


async def test_reset_codes_cannot_be_guessed(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await officer_client(app, client)
    page = f"/staff/residents/{who.id}"
    code = await issue_reset_code(client, page)
    async with open_client(app, "198.51.100.53") as guesser:
        for attempt in range(5):
            wrong = await post_form(guesser, "/recover", {"email": who.email, "code": f"aaaa-bbbb-cccc-{attempt:04d}"})
            assert wrong.status_code == 400
        # Five wrong guesses spend the code, even for the right one afterwards.
        late = await post_form(guesser, "/recover", {"email": who.email, "code": code})
    assert late.status_code == 400
    async with app.state.sessionmaker() as db:
        throttles = (await db.scalars(select(SignInThrottle.key))).all()
    assert f"account:{who.id}" in throttles


async def test_recover_explains_blank_fields(client: httpx.AsyncClient) -> None:
    response = await post_form(client, "/recover", {"email": "", "code": ""})
    assert response.status_code == 400
    assert field_error(response.text, "email") == "Enter your email address and the reset code the officer gave you."


async def test_a_recovered_resident_who_sets_up_an_app_can_sign_in(app: FastAPI, client: httpx.AsyncClient) -> None:
    who = await make_resident(app)
    await officer_client(app, client)
    page = f"/staff/residents/{who.id}"
    code = await issue_reset_code(client, page)
    async with open_client(app, "198.51.100.60") as resident:
        await post_form(resident, "/recover", {"email": who.email, "code": code})
        await post_form(resident, "/account/password", {"new_password": "amber ferry kite orchard"})
        setup = await resident.get("/account/totp")
        secret = "".join(setup.text.split('id="totp-secret"><code>')[1].split("</code>")[0].split())
        token = require(h.CSRF_PATTERN.search(setup.text)).group(1)
        added = await resident.post("/account/totp", data={"code": totp.current_code(secret), "csrf_token": token})
        assert added.headers["location"] == "/account/recovery-codes"
        assert (await resident.get("/account")).status_code == 200
    async with open_client(app, "198.51.100.61") as later:
        again = h.TestResident(who.id, who.email, "amber ferry kite orchard", secret, who.id_number)
        assert (await sign_in(later, again, next_code(secret))).headers["location"] == "/account"
