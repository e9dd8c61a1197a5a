"""Demo residents and staff for `bauhinia demo`. Idempotent: running it twice changes nothing."""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.identity import idcard, totp
from bauhinia.identity.schemas import RegistrationInput, ValidRegistration, validate_registration
from bauhinia.identity.service import IdentityService


@dataclass
class DemoAccount:
    kind: str
    login: str
    password: str
    totp_secret: str
    description: str


def _demo_password() -> str:
    words = ["harbour", "lantern", "orchid", "tramway", "junk", "dimsum", "peak", "ferry", "typhoon"]
    return "-".join(secrets.SystemRandom().sample(words, 4))


def _residents(today: date) -> list[tuple[RegistrationInput, str, bool]]:
    minor_year = today.year - 15
    return [
        (
            RegistrationInput(
                english_surname="Chan",
                english_given_names="Tai Man",
                chinese_name="陳大文",
                id_number=f"A123456({idcard.check_digit('A', '123456')})",
                dob_day="27",
                dob_month="3",
                dob_year="1985",
                gender="M",
                email="chan.taiman@demo.bauhinia.hk",
                mobile="+85291234567",
            ),
            "Verified adult resident (password + authenticator app)",
            True,
        ),
        (
            RegistrationInput(
                english_surname="Wong",
                english_given_names="Siu Ming",
                chinese_name="黃小明",
                id_number=f"Y654321({idcard.check_digit('Y', '654321')})",
                dob_day="8",
                dob_month="11",
                dob_year="1948",
                gender="F",
                email="wong.siuming@demo.bauhinia.hk",
            ),
            "Elderly resident, not yet verified at a counter",
            False,
        ),
        (
            RegistrationInput(
                english_surname="Lee",
                english_given_names="Ka Yan",
                chinese_name="李嘉欣",
                id_number=f"R200811({idcard.check_digit('R', '200811')})",
                dob_day="1",
                dob_month="9",
                dob_year=str(minor_year),
                gender="F",
                email="lee.kayan@demo.bauhinia.hk",
                guardian_name="Lee Wai Man",
                guardian_id_number=f"C668668({idcard.check_digit('C', '668668')})",
                guardian_relationship="parent",
                guardian_declaration="yes",
            ),
            "Resident aged 15, with a parent's consent",
            False,
        ),
    ]


DEMO_ADDRESSES = (
    "Flat 12A, Block 3, Harmony Court, 28 Kwun Tong Road, Kowloon",
    "Room 805, Wah Fu Estate, Pok Fu Lam, Hong Kong",
    "Flat 3C, Tower 1, Sea View Garden, 8 Tai Po Road, New Territories",
)


async def seed_demo(db: AsyncSession, service: IdentityService, data_dir: Path, today: date) -> list[DemoAccount]:
    accounts_file = data_dir / "demo-accounts.json"
    if accounts_file.exists():
        return [DemoAccount(**a) for a in json.loads(accounts_file.read_text())]
    accounts: list[DemoAccount] = []
    staff_secret = totp.new_secret()
    staff_password = _demo_password()
    officer = await service.create_staff(db, "officer1", "Officer Ho", ["officer"], staff_password, staff_secret)
    accounts.append(
        DemoAccount("staff", "officer1", staff_password, staff_secret, "Counter officer (staff area /staff)")
    )
    for form, description, verified in _residents(today):
        form.password = _demo_password()
        checked = validate_registration(form, today)
        assert isinstance(checked, ValidRegistration), checked
        resident = await service.register(db, checked, language="en", client="seed", today=today)
        secret = totp.new_secret()
        await service.add_totp(db, resident.id, secret, totp.current_code(secret))
        if verified:
            await service.verify_identity(
                db,
                officer,
                resident.id,
                id_number=form.id_number,
                channel="counter",
                document="hkid-card",
                location="Demo counter, Central",
            )
        await service.set_residential_address(db, resident.id, DEMO_ADDRESSES[len(accounts) - 1], by="seed")
        await db.commit()
        accounts.append(DemoAccount("resident", checked.email, form.password, secret, description))
    await asyncio.to_thread(_write_private, accounts_file, json.dumps([asdict(a) for a in accounts], indent=2))
    return accounts


def _write_private(path: Path, content: str) -> None:
    """Readable by the owner only: the file holds demo passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(content)


def demo_identity_numbers() -> dict[str, str]:
    """The demo residents' identity card numbers, by first word of their email (for e-Proof's seed)."""
    return {form.email.split(".", 1)[0]: form.id_number for form, _, _ in _residents(date.today())}
