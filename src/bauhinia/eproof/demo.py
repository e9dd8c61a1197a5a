"""The demo's credential types and a few dozen issued credentials, so the log is never empty.

Transport issues driving licences, Housing tenancy letters and Inland Revenue business registration
certificates, each through its own back-end client as a department would call the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bauhinia.eproof.models import Credential, CredentialType
from bauhinia.eproof.schemas import CredentialTypeRegistration, IssuanceRequest
from bauhinia.eproof.service import EproofService

DATE = {"type": "string", "format": "date", "maxLength": 10}


def _text(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def _titles(**titles: tuple[str, str, str]) -> dict[str, dict[str, str]]:
    return {name: {"en": en, "zh-Hant": hant, "zh-Hans": hans} for name, (en, hant, hans) in titles.items()}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


TYPES: list[dict[str, Any]] = [
    {
        "id": "td.driving-licence",
        "issuer": "HK/GOV/TD",
        "name": {"en": "Full driving licence", "zh-Hant": "正式駕駛執照", "zh-Hans": "正式驾驶执照"},
        "claims_schema": _schema(
            {
                "name_en": _text(80),
                "name_zh": _text(20),
                "licence_number": _text(20),
                "classes": {"type": "array", "items": _text(4), "minItems": 1, "maxItems": 20},
                "issued_on": DATE,
                "expires_on": DATE,
                "conditions": {"type": "string", "maxLength": 120},
            },
            ["name_en", "licence_number", "classes", "issued_on", "expires_on"],
        ),
        "claim_titles": _titles(
            name_en=("Name", "姓名", "姓名"),
            name_zh=("Name in Chinese", "中文姓名", "中文姓名"),
            licence_number=("Licence number", "執照號碼", "执照号码"),
            classes=("Vehicle classes", "車輛類別", "车辆类别"),
            issued_on=("Issued on", "簽發日期", "签发日期"),
            expires_on=("Expires on", "屆滿日期", "届满日期"),
            conditions=("Conditions", "條件", "条件"),
        ),
        "selective": ["name_zh", "licence_number", "issued_on", "conditions"],
        "printed": ["name_en", "name_zh", "licence_number", "classes", "expires_on", "conditions"],
        "validity_days": 3650,
    },
    {
        "id": "hd.tenancy-letter",
        "issuer": "HK/GOV/HD",
        "name": {"en": "Public housing tenancy letter", "zh-Hant": "公屋租約證明信", "zh-Hans": "公屋租约证明信"},
        "claims_schema": _schema(
            {
                "tenant_name_en": _text(80),
                "tenant_name_zh": _text(20),
                "estate": _text(60),
                "block": _text(60),
                "flat": _text(40),
                "tenancy_start": DATE,
            },
            ["tenant_name_en", "estate", "block", "flat", "tenancy_start"],
        ),
        "claim_titles": _titles(
            tenant_name_en=("Tenant", "租戶", "租户"),
            tenant_name_zh=("Tenant in Chinese", "租戶中文姓名", "租户中文姓名"),
            estate=("Estate", "屋邨", "屋邨"),
            block=("Block", "座數", "座数"),
            flat=("Flat", "單位", "单位"),
            tenancy_start=("Tenancy since", "租約開始日期", "租约开始日期"),
        ),
        "selective": ["tenant_name_zh", "block", "flat", "tenancy_start"],
        "printed": ["tenant_name_en", "tenant_name_zh", "estate", "block", "flat", "tenancy_start"],
        "validity_days": 365,
    },
    {
        "id": "ird.business-registration",
        "issuer": "HK/GOV/IRD",
        "name": {"en": "Business registration certificate", "zh-Hant": "商業登記證", "zh-Hans": "商业登记证"},
        "claims_schema": _schema(
            {
                "business_name_en": _text(120),
                "business_name_zh": _text(40),
                "certificate_number": _text(24),
                "address": _text(160),
                "nature": _text(80),
                "commenced_on": DATE,
                "expires_on": DATE,
            },
            ["business_name_en", "certificate_number", "nature", "commenced_on", "expires_on"],
        ),
        "claim_titles": _titles(
            business_name_en=("Business name", "業務名稱", "业务名称"),
            business_name_zh=("Business name in Chinese", "中文業務名稱", "中文业务名称"),
            certificate_number=("Certificate number", "證書號碼", "证书号码"),
            address=("Business address", "業務地址", "业务地址"),
            nature=("Nature of business", "業務性質", "业务性质"),
            commenced_on=("Commenced on", "開業日期", "开业日期"),
            expires_on=("Expires on", "屆滿日期", "届满日期"),
        ),
        "selective": ["address", "commenced_on"],
        "printed": ["business_name_en", "business_name_zh", "certificate_number", "nature", "expires_on"],
        "validity_days": 365,
    },
]

ISSUING_CLIENTS = {"HK/GOV/TD": "td-backend", "HK/GOV/HD": "housing-backend", "HK/GOV/IRD": "ird-backend"}
TRADES = ["Tea house", "Printing", "Florist", "Electronics trading", "Tailoring", "Bakery", "Courier", "Stationery"]


def demo_issuances(identity_numbers: dict[str, str]) -> list[tuple[str, IssuanceRequest]]:
    """(issuing client, request): a licence and a tenancy letter, and each resident's businesses."""
    chan, wong, lee = identity_numbers["chan"], identity_numbers["wong"], identity_numbers["lee"]
    requests: list[tuple[str, dict[str, Any]]] = [
        (
            "td-backend",
            {
                "type": "td.driving-licence",
                "holder": {"identity_number": chan},
                "claims": {
                    "name_en": "CHAN, Tai Man",
                    "name_zh": "陳大文",
                    "licence_number": "CTM853271",
                    "classes": ["1", "2"],
                    "issued_on": "2021-06-01",
                    "expires_on": "2031-05-31",
                    "conditions": "Corrective lenses must be worn",
                },
            },
        ),
        (
            "housing-backend",
            {
                "type": "hd.tenancy-letter",
                "holder": {"identity_number": wong},
                "claims": {
                    "tenant_name_en": "WONG, Siu Ming",
                    "tenant_name_zh": "黃小明",
                    "estate": "Choi Hung Estate 彩虹邨",
                    "block": "Kam Hung House 金虹樓",
                    "flat": "Room 1203, 12/F",
                    "tenancy_start": "2024-03-01",
                },
            },
        ),
    ]
    for n in range(30):
        owner = (chan, wong, lee)[n % 3]
        trade = TRADES[n % len(TRADES)]
        requests.append(
            (
                "ird-backend",
                {
                    "type": "ird.business-registration",
                    "holder": {"identity_number": owner},
                    "claims": {
                        "business_name_en": f"{trade} No. {n + 1} Company",
                        "certificate_number": f"{73519264 + n * 37:08d}-000-06-26-{n % 10}",
                        "address": f"Shop {n + 1}, G/F, 88 Hoi Yuen Road, Kwun Tong",
                        "nature": trade,
                        "commenced_on": f"20{10 + n % 15:02d}-06-14",
                        "expires_on": "2027-06-13",
                    },
                },
            )
        )
    return [(client, IssuanceRequest.model_validate(body)) for client, body in requests]


async def register_demo_types(db: AsyncSession, service: EproofService) -> None:
    for kind in TYPES:
        if await db.get(CredentialType, kind["id"]) is None:
            await service.register_type(db, CredentialTypeRegistration.model_validate(kind), actor="demo-seed")


async def issue_demo_credentials(
    db: AsyncSession,
    engine: AsyncEngine,
    service: EproofService,
    identity_numbers: dict[str, str],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Issue the demo's credentials once (a second `bauhinia demo` on the same data finds them);
    ``progress(done, total)`` after each."""
    if await db.scalar(select(func.count()).select_from(Credential)):
        return 0
    issuances = demo_issuances(identity_numbers)
    for done, (client, request) in enumerate(issuances, start=1):
        await service.issue(db, engine, client, request)
        if progress is not None:
            progress(done, len(issuances))
    return len(issuances)
