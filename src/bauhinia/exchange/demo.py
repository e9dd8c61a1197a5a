"""The demo departments' registration in the gateway, made by ``bauhinia demo`` (demo mode only).

Each system's *private* signing and encryption JWKs are written to
``<data-dir>/members/<member-code>-<subsystem>.json`` so the demo departments can sign and decrypt at
once. Production never generates members' keys: members register their public keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.exchange.schemas import (
    DataItemPublication,
    MemberRegistration,
    PurposeRegistration,
    SystemRegistration,
)
from bauhinia.exchange.service import ExchangeService

ACTOR = "operator:demo"
HOUSING_RETURN = "/demo/housing/consent-done"
DATE = {"type": "string", "format": "date"}

# (member id, names, subsystem, roles, OpenID client, path of its demo endpoint)
MEMBERS: list[tuple[str, dict[str, str], str, list[str], str, str]] = [
    (
        "HK/GOV/IMMD",
        {"en": "Immigration Department", "zh-Hant": "入境事務處", "zh-Hans": "入境事务处"},
        "residency",
        ["provider"],
        "immd-backend",
        "/demo/immigration/exchange",
    ),
    (
        "HK/GOV/IRD",
        {"en": "Inland Revenue Department", "zh-Hant": "稅務局", "zh-Hans": "税务局"},
        "assessments",
        ["provider"],
        "ird-backend",
        "/demo/inland-revenue/exchange",
    ),
    (
        "HK/GOV/TD",
        {"en": "Transport Department", "zh-Hant": "運輸署", "zh-Hans": "运输署"},
        "licensing",
        ["provider"],
        "td-backend",
        "/demo/transport/exchange",
    ),
    (
        "HK/GOV/HD",
        {"en": "Housing Department", "zh-Hant": "房屋署", "zh-Hans": "房屋署"},
        "applications",
        ["consumer"],
        "housing-backend",
        "/demo/housing/exchange/webhook",
    ),
]

ITEMS: list[dict[str, Any]] = [
    {
        "id": "immd.residential-address",
        "title": {"en": "Residential address", "zh-Hant": "住址", "zh-Hans": "住址"},
        "provider_system_id": "HK/GOV/IMMD/residency",
        "sensitivity": "restricted",
        "legal_basis": "Registration of Persons Ordinance (Cap. 177) and the Personal Data (Privacy) Ordinance "
        "(Cap. 486), DPP 3: disclosed with the resident's express consent.",
        "purpose_limitation": "Only to fill in or check the address on the application the resident consented to.",
        "value_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": False,
            "required": ["building", "district", "region"],
            "properties": {
                "flat": {"type": "string", "maxLength": 16},
                "floor": {"type": "string", "maxLength": 8},
                "block": {"type": "string", "maxLength": 16},
                "building": {"type": "string", "maxLength": 120},
                "street": {"type": "string", "maxLength": 120},
                "district": {"type": "string", "maxLength": 40},
                "region": {"enum": ["Hong Kong Island", "Kowloon", "New Territories"]},
                "last_updated": DATE,
            },
        },
    },
    {
        "id": "ird.assessable-income",
        "title": {"en": "Assessable income", "zh-Hant": "應評稅入息", "zh-Hans": "应评税入息"},
        "provider_system_id": "HK/GOV/IRD/assessments",
        "sensitivity": "confidential",
        "legal_basis": "Inland Revenue Ordinance (Cap. 112) s.4 (official secrecy): disclosed only with the "
        "taxpayer's consent.",
        "purpose_limitation": "Only to assess eligibility for the scheme named in the consent; not for enforcement.",
        "value_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": False,
            "required": ["year_of_assessment", "assessable_income_hkd"],
            "properties": {
                "year_of_assessment": {"type": "string", "pattern": "^[0-9]{4}/[0-9]{2}$"},
                "assessable_income_hkd": {"type": "integer", "minimum": 0},
                "assessed_on": DATE,
            },
        },
    },
    {
        "id": "td.driving-licence",
        "title": {"en": "Driving licence", "zh-Hant": "駕駛執照", "zh-Hans": "驾驶执照"},
        "provider_system_id": "HK/GOV/TD/licensing",
        "sensitivity": "internal",
        "legal_basis": "Road Traffic Ordinance (Cap. 374) and the Road Traffic (Driving Licences) Regulations: "
        "disclosed with the licence holder's consent.",
        "purpose_limitation": "Only to confirm the licence's classes and validity for the stated purpose.",
        "value_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "additionalProperties": False,
            "required": ["licence_number", "classes", "expiry_date", "status"],
            "properties": {
                "licence_number": {"type": "string", "pattern": "^[A-Z0-9]{6,12}$"},
                "classes": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 1},
                "issue_date": DATE,
                "expiry_date": DATE,
                "status": {"enum": ["valid", "suspended", "expired", "revoked"]},
            },
        },
    },
]

PURPOSE = {
    "code": "housing.public-rental-application",
    "description": {
        "en": "To fill in and check your application for public rental housing.",
        "zh-Hant": "填寫及核實你的公共租住房屋申請。",
        "zh-Hans": "填写及核实您的公共租住房屋申请。",
    },
    "consumer_system_ids": ["HK/GOV/HD/applications"],
}


async def register_demo_members(db: AsyncSession, service: ExchangeService, data_dir: Path) -> list[str]:
    """Register what is missing (members, systems with fresh keys, items, the purpose); returns new system ids."""
    base = service.oidc.issuer
    members = {m.id for m in await service.members(db)}
    systems = {s.id for s in await service.systems(db)}
    added = []
    for member_id, names, subsystem, roles, client_id, path in MEMBERS:
        if member_id not in members:
            registration = MemberRegistration.model_validate({"id": member_id, "name": names})
            await service.register_member(db, registration, actor=ACTOR)
        system_id = f"{member_id}/{subsystem}"
        if system_id not in systems:
            await _register_system(db, service, data_dir, system_id, roles, client_id, f"{base}{path}")
            added.append(system_id)
    items = {i.id for i in await service.items(db)}
    for item in ITEMS:
        if item["id"] not in items:
            await service.publish_item(db, DataItemPublication.model_validate(item), actor=ACTOR)
    if PURPOSE["code"] not in {p.code for p in await service.purposes(db)}:
        await service.register_purpose(db, PurposeRegistration.model_validate(PURPOSE), actor=ACTOR)
    return added


async def _register_system(
    db: AsyncSession,
    service: ExchangeService,
    data_dir: Path,
    system_id: str,
    roles: list[str],
    client_id: str,
    url: str,
) -> None:
    signing = ECKey.generate_key("P-256", {"use": "sig", "alg": "ES256"}, auto_kid=True)
    encryption = ECKey.generate_key("P-256", {"use": "enc", "alg": "ECDH-ES"}, auto_kid=True)
    endpoint = "data_endpoint" if "provider" in roles else "webhook_url"
    extra = {"redirect_uris": [f"{service.oidc.issuer}{HOUSING_RETURN}"]} if "consumer" in roles else {}
    registration = SystemRegistration.model_validate(
        {
            **extra,
            "id": system_id,
            "roles": roles,
            "signing_jwks": {"keys": [signing.as_dict(private=False)]},
            "encryption_jwks": {"keys": [encryption.as_dict(private=False)]},
            endpoint: url,
            "client_id": client_id,
            "allow_loopback_http": True,
        }
    )
    await service.register_system(db, registration, actor=ACTOR)
    _, _, member_code, subsystem = system_id.split("/")
    _write_private(
        data_dir / "members" / f"{member_code}-{subsystem}.json",
        {
            "system_id": system_id,
            "client_id": client_id,
            "client_file": str(data_dir / "clients" / f"{client_id}.json"),
            "gateway": service.oidc.issuer,
            "signing_private_jwk": signing.as_dict(private=True),
            "encryption_private_jwk": encryption.as_dict(private=True),
        },
    )


def _write_private(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False))


# What each demo department holds on the demo residents, by their login (the seed's e-mail addresses).
# The elderly resident has no driving licence: the Transport Department says so (a "denied" answer).
DEPARTMENT_RECORDS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "HK/GOV/IMMD": {
        "chan.taiman@demo.bauhinia.hk": {
            "immd.residential-address": {
                "value": {
                    "flat": "12A",
                    "block": "3",
                    "building": "Harmony Court",
                    "street": "28 Kwun Tong Road",
                    "district": "Kwun Tong",
                    "region": "Kowloon",
                    "last_updated": "2024-05-02",
                },
                "as_of": "2024-05-02",
            }
        },
        "wong.siuming@demo.bauhinia.hk": {
            "immd.residential-address": {
                "value": {
                    "flat": "805",
                    "building": "Wah Fu Estate",
                    "street": "Wah Fu Road",
                    "district": "Southern",
                    "region": "Hong Kong Island",
                    "last_updated": "2019-08-15",
                },
                "as_of": "2019-08-15",
            }
        },
        "lee.kayan@demo.bauhinia.hk": {
            "immd.residential-address": {
                "value": {
                    "flat": "3C",
                    "block": "Tower 1",
                    "building": "Sea View Garden",
                    "street": "8 Tai Po Road",
                    "district": "Tai Po",
                    "region": "New Territories",
                    "last_updated": "2025-01-20",
                },
                "as_of": "2025-01-20",
            }
        },
    },
    "HK/GOV/IRD": {
        "chan.taiman@demo.bauhinia.hk": {
            "ird.assessable-income": {
                "value": {
                    "year_of_assessment": "2025/26",
                    "assessable_income_hkd": 312000,
                    "assessed_on": "2026-08-14",
                },
                "as_of": "2026-08-14",
            }
        },
        "wong.siuming@demo.bauhinia.hk": {
            "ird.assessable-income": {
                "value": {"year_of_assessment": "2025/26", "assessable_income_hkd": 0, "assessed_on": "2026-07-30"},
                "as_of": "2026-07-30",
            }
        },
    },
    "HK/GOV/TD": {
        "chan.taiman@demo.bauhinia.hk": {
            "td.driving-licence": {
                "value": {
                    "licence_number": "CTM853271",
                    "classes": ["1", "2"],
                    "issue_date": "2005-06-01",
                    "expiry_date": "2031-05-31",
                    "status": "valid",
                },
                "as_of": "2021-06-01",
            }
        },
    },
}


async def write_department_records(db: AsyncSession, service: ExchangeService, data_dir: Path) -> None:
    """Write each demo provider's records under its own subjects for the residents, as a department
    that has linked its files to the platform would hold them: ``<data-dir>/departments/<CODE>.json``."""
    for member_id, residents in DEPARTMENT_RECORDS.items():
        records = {}
        for login, items in residents.items():
            resident = await service.oidc.identity.find_resident(db, login)
            if resident is not None:
                records[service.forwarder.provider_subject(member_id, resident.id)] = items
        system_id = next(f"{m}/{sub}" for m, _, sub, *_ in MEMBERS if m == member_id)
        code = member_id.rsplit("/", 1)[1]
        _write_private(data_dir / "departments" / f"{code}.json", {"system_id": system_id, "records": records})
