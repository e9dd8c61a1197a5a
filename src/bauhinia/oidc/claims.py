"""The e-ME profile items a service may ask for, the OpenID claims each becomes, and subjects.

A resident approves items, not claims: "your name" is one decision even though it
becomes ``name``, ``family_name``, ``given_name`` and ``name#zh-Hant``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bauhinia.core.i18n import N_
from bauhinia.core.keys import pairwise_identifier
from bauhinia.identity.service import AssuranceLevel, ResidentProfile


@dataclass(frozen=True)
class Item:
    name: str
    label: str  # message id, shown on the consent page
    claims: tuple[str, ...]


ITEMS: dict[str, Item] = {
    item.name: item
    for item in (
        Item("name", N_("Your name in English and Chinese"), ("name", "family_name", "given_name", "name#zh-Hant")),
        Item("birthdate", N_("Your date of birth"), ("birthdate",)),
        Item("gender", N_("Your gender"), ("gender",)),
        Item("address", N_("Your residential address"), ("address",)),
        Item("phone", N_("Your mobile phone number"), ("phone_number", "phone_number_verified")),
        Item("email", N_("Your email address"), ("email", "email_verified")),
    )
}
CLAIM_ITEM = {claim: item.name for item in ITEMS.values() for claim in item.claims}
SCOPE_ITEMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "birthdate", "gender"),
    "email": ("email",),
    "phone": ("phone",),
    "address": ("address",),
}
STANDARD_SCOPES = frozenset({"openid", "offline_access", *SCOPE_ITEMS})
ACR_ORDER = (AssuranceLevel.BASIC.value, AssuranceLevel.VERIFIED.value)
MULTI_FACTOR = "mfa"
GENDERS = {"F": "female", "M": "male", "X": "unspecified"}


def requested_items(scopes: Iterable[str], claims_request: dict[str, Any] | None) -> list[str]:
    """The items a request asks for, through scopes and the ``claims`` parameter (userinfo or id_token)."""
    wanted = {item for scope in scopes for item in SCOPE_ITEMS.get(scope, ())}
    for target in ("userinfo", "id_token"):
        section = (claims_request or {}).get(target) or {}
        wanted.update(CLAIM_ITEM[claim] for claim in section if claim in CLAIM_ITEM)
    return sorted(wanted)


def claims_for(profile: ResidentProfile, items: Iterable[str]) -> dict[str, Any]:
    """The OpenID claims of the approved items, and nothing else."""
    approved = set(items)
    claims: dict[str, Any] = {}
    if "name" in approved:
        claims.update(
            name=f"{profile.english_surname} {profile.english_given_names}",
            family_name=profile.english_surname,
            given_name=profile.english_given_names,
        )
        if profile.chinese_name:
            claims["name#zh-Hant"] = profile.chinese_name
    if "birthdate" in approved:
        claims["birthdate"] = profile.date_of_birth.isoformat()
    if "gender" in approved:
        claims["gender"] = GENDERS.get(profile.gender, "unspecified")
    if "address" in approved and profile.residential_address:
        claims["address"] = {"formatted": profile.residential_address, "country": "HK"}
    if "phone" in approved and profile.mobile:
        claims.update(phone_number=profile.mobile, phone_number_verified=False)
    if "email" in approved:
        claims.update(email=profile.email, email_verified=False)
    return claims


def pairwise_subject(key: bytes, sector: str, resident_id: str) -> str:
    """OIDC Core §8.1: the same resident gets unrelated identifiers in unrelated sectors."""
    return pairwise_identifier(key, sector, resident_id)


def achieved_acr(profile: ResidentProfile, amr: Iterable[str]) -> str:
    """``verified`` needs an identity checked at a counter *and* a multi-factor sign-in."""
    if profile.assurance_level is AssuranceLevel.VERIFIED and MULTI_FACTOR in set(amr):
        return AssuranceLevel.VERIFIED.value
    return AssuranceLevel.BASIC.value


def acr_rank(acr: str) -> int:
    return ACR_ORDER.index(acr) if acr in ACR_ORDER else -1


def satisfies(achieved: str, required: str | None) -> bool:
    """Whether a sign-in at ``achieved`` meets ``required``. A requirement we do not know (an essential
    acr we cannot provide) is met by nothing: comparing ranks alone would rank it below ``basic``."""
    if required is None:
        return True
    return acr_rank(required) >= 0 and acr_rank(achieved) >= acr_rank(required)


def parse_claims_parameter(raw: str | None) -> dict[str, Any] | None:
    """The ``claims`` request parameter (OIDC Core §5.5), or ValueError when it is not a claims object."""
    if not raw:
        return None
    value = json.loads(raw)
    if not isinstance(value, dict) or set(value) - {"userinfo", "id_token"}:
        raise ValueError("claims must be a JSON object with userinfo and/or id_token members")
    for section in value.values():
        if section is not None and not isinstance(section, dict):
            raise ValueError("claims members must be objects")
        for spec in (section or {}).values():
            if spec is not None and not isinstance(spec, dict):
                raise ValueError("each requested claim must be null or an object")
    return value
