"""Form input for identity pages, validated field by field into message ids a person can read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from email_validator import EmailNotValidError, validate_email

from bauhinia.core.i18n import N_
from bauhinia.identity import idcard, passwords

NAME_MAX = 80
MIN_AGE = 11
ADULT_AGE = 18
GENDERS = ("F", "M", "X")
RELATIONSHIPS = ("parent", "guardian")
_LATIN_NAME = re.compile(r"^[A-Za-z][A-Za-z .'\-]*$")
_CHINESE_NAME = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef·]{1,20}$")
_MOBILE = re.compile(r"^\+?[0-9]{8,15}$")


@dataclass
class RegistrationInput:
    english_surname: str = ""
    english_given_names: str = ""
    chinese_name: str = ""
    id_number: str = ""
    dob_day: str = ""
    dob_month: str = ""
    dob_year: str = ""
    gender: str = ""
    email: str = ""
    mobile: str = ""
    password: str = ""
    guardian_name: str = ""
    guardian_id_number: str = ""
    guardian_relationship: str = ""
    guardian_declaration: str = ""


@dataclass
class ValidRegistration:
    english_surname: str
    english_given_names: str
    chinese_name: str | None
    id_number: idcard.IdNumber
    date_of_birth: date
    gender: str
    email: str
    mobile: str | None
    password: str
    guardian: ValidGuardian | None = None


@dataclass
class ValidGuardian:
    name: str
    id_number: idcard.IdNumber
    relationship: str


@dataclass
class FieldErrors:
    """Errors by field name, in the order the fields appear on the form."""

    errors: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.errors)


def personal_names(surname: str, given_names: str) -> list[str]:
    """A resident's names as the password policy should recognise them, the full name in either order too."""
    return [surname, given_names, f"{given_names} {surname}", f"{surname} {given_names}"]


def age_on(birth: date, today: date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _name(value: str, errors: FieldErrors, name: str, required_message: str) -> str:
    value = " ".join(value.split())
    if not value:
        errors.add(name, required_message)
    elif len(value) > NAME_MAX:
        errors.add(name, N_("Names can be at most 80 characters long."))
    elif not _LATIN_NAME.match(value):
        errors.add(name, N_("Enter the English name as printed on your identity card, using letters only."))
    return value.upper()


def parse_date(day: str, month: str, year: str, errors: FieldErrors, name: str, today: date) -> date | None:
    if not (day.strip() and month.strip() and year.strip()):
        errors.add(name, N_("Enter your date of birth, for example 27 3 1985."))
        return None
    try:
        parsed = date(int(year), int(month), int(day))
    except (ValueError, OverflowError):
        errors.add(name, N_("Date of birth must be a real date."))
        return None
    if parsed > today:
        errors.add(name, N_("Date of birth must be in the past."))
        return None
    if parsed.year < 1900:
        errors.add(name, N_("Date of birth must be after 1900."))
        return None
    return parsed


def _id_number(value: str, errors: FieldErrors, name: str) -> idcard.IdNumber | None:
    if not value.strip():
        errors.add(name, N_("Enter the identity card number."))
        return None
    try:
        return idcard.parse(value)
    except idcard.InvalidIdNumber as exc:
        errors.add(name, exc.reason)
        return None


def normalise_email(value: str) -> str | None:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def validate_registration(form: RegistrationInput, today: date) -> ValidRegistration | FieldErrors:
    errors = FieldErrors()
    surname = _name(form.english_surname, errors, "english_surname", N_("Enter your surname in English."))
    given = _name(form.english_given_names, errors, "english_given_names", N_("Enter your given names in English."))
    chinese = form.chinese_name.strip()
    if chinese and not _CHINESE_NAME.match(chinese):
        errors.add("chinese_name", N_("Enter your Chinese name in Chinese characters, or leave it blank."))
    id_number = _id_number(form.id_number, errors, "id_number")
    birth = parse_date(form.dob_day, form.dob_month, form.dob_year, errors, "date_of_birth", today)
    if birth is not None and age_on(birth, today) < MIN_AGE:
        errors.add("date_of_birth", N_("You must be 11 or older to register. A parent can help at a counter."))
    if form.gender not in GENDERS:
        errors.add("gender", N_("Select your gender as recorded on your identity card."))
    email = normalise_email(form.email) if len(form.email) <= 254 else None
    if email is None:
        errors.add("email", N_("Enter an email address in the right format, like name@example.com."))
    mobile = re.sub(r"[\s-]", "", form.mobile)
    if mobile and not _MOBILE.match(mobile):
        errors.add("mobile", N_("Enter a mobile number of 8 to 15 digits, or leave it blank."))
    # Checked with the other fields so one submission shows every problem (the service checks again).
    personal = [*personal_names(surname, given), form.email, form.id_number]
    password_problem = passwords.policy_problem(form.password, personal)
    if password_problem:
        errors.add("password", password_problem)
    guardian = None
    if birth is not None and MIN_AGE <= age_on(birth, today) < ADULT_AGE:
        guardian = _guardian(form, errors, id_number)
    if errors:
        return errors
    # errors is empty, so every field parsed
    assert id_number is not None
    assert birth is not None
    assert email is not None
    return ValidRegistration(
        surname, given, chinese or None, id_number, birth, form.gender, email, mobile or None, form.password, guardian
    )


def _guardian(form: RegistrationInput, errors: FieldErrors, own: idcard.IdNumber | None) -> ValidGuardian | None:
    name = " ".join(form.guardian_name.split())
    if not name:
        errors.add(
            "guardian_name",
            N_("Enter your parent or guardian's full name. Residents aged 11 to 17 need their agreement."),
        )
    elif len(name) > 160:
        errors.add("guardian_name", N_("Names can be at most 80 characters long."))
    guardian_id = _id_number(form.guardian_id_number, errors, "guardian_id_number")
    if guardian_id is not None and own is not None and guardian_id.canonical == own.canonical:
        errors.add("guardian_id_number", N_("The parent or guardian must be another person."))
    if form.guardian_relationship not in RELATIONSHIPS:
        errors.add("guardian_relationship", N_("Select how the parent or guardian is related to you."))
    if form.guardian_declaration != "yes":
        errors.add("guardian_declaration", N_("Your parent or guardian must confirm that they consent."))
    if name and guardian_id is not None and form.guardian_relationship in RELATIONSHIPS:
        return ValidGuardian(name, guardian_id, form.guardian_relationship)
    return None
