"""The demo departments' clients, registered by ``bauhinia demo`` (demo mode only).

Each client's id, scopes and *private* JWK are written to ``<data-dir>/clients/<client_id>.json``
so an integrator can call the APIs at once. Production never generates or writes client keys:
departments register their public keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.oidc.schemas import ClientMetadata
from bauhinia.oidc.service import OPERATOR_SCOPE, OidcService


def _definitions(base: str) -> list[dict[str, Any]]:
    return [
        {
            "client_id": "housing-portal",
            "client_name": {"en": "Public housing application", "zh-Hant": "公屋申請", "zh-Hans": "公屋申请"},
            "department": {"en": "Housing Department", "zh-Hant": "房屋署", "zh-Hans": "房屋署"},
            "purpose": {
                "en": "To fill in your public housing application form for you, so you do not type it again.",
                "zh-Hant": "為你預先填寫公屋申請表，免你再次輸入。",
                "zh-Hans": "为您预先填写公屋申请表，免您再次输入。",
            },
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "profile", "email", "phone", "address"],
            "items": ["name", "birthdate", "gender", "address", "phone", "email"],
            "redirect_uris": [f"{base}/demo/housing/callback"],
            "post_logout_redirect_uris": [f"{base}/demo/housing/"],
            "sector_identifier": "housing.demo.bauhinia.hk",
            "fapi": True,
        },
        {
            "client_id": "td-licensing",
            "client_name": {"en": "Driving licence renewal", "zh-Hant": "續領駕駛執照", "zh-Hans": "续领驾驶执照"},
            "department": {"en": "Transport Department", "zh-Hant": "運輸署", "zh-Hans": "运输署"},
            "purpose": {
                "en": "To check who you are before renewing your driving licence.",
                "zh-Hant": "在續領駕駛執照前核實你的身份。",
                "zh-Hans": "在续领驾驶执照前核实您的身份。",
            },
            "grant_types": ["authorization_code"],
            "scopes": ["openid", "profile", "address"],
            "items": ["name", "birthdate", "address"],
            "redirect_uris": [f"{base}/demo/transport/callback"],
            "post_logout_redirect_uris": [f"{base}/demo/transport/"],
            "sector_identifier": "transport.demo.bauhinia.hk",
            "required_acr": "verified",
        },
        {
            "client_id": "ird-backend",
            "client_name": {"en": "Inland Revenue back office", "zh-Hant": "稅務局後台", "zh-Hans": "税务局后台"},
            "department": {"en": "Inland Revenue Department", "zh-Hant": "稅務局", "zh-Hans": "税务局"},
            "grant_types": ["client_credentials"],
            "scopes": ["ird.records"],
        },
        *_exchange_backends(),
        {
            "client_id": "platform-operator",
            "client_name": {"en": "Platform operator", "zh-Hant": "平台營運者", "zh-Hans": "平台运营者"},
            "department": {"en": "Bauhinia operations", "zh-Hant": "Bauhinia 營運組", "zh-Hans": "Bauhinia 运营组"},
            "grant_types": ["client_credentials"],
            "scopes": [OPERATOR_SCOPE],
        },
    ]


def _exchange_backends() -> list[dict[str, Any]]:
    """The other departments' back-ends: each speaks for its system in the data exchange gateway
    (Inland Revenue's is ird-backend above)."""
    departments = {
        "immd": (
            ("Immigration back office", "入境事務處後台", "入境事务处后台"),
            ("Immigration Department", "入境事務處", "入境事务处"),
        ),
        "td": (("Transport back office", "運輸署後台", "运输署后台"), ("Transport Department", "運輸署", "运输署")),
        "housing": (("Housing back office", "房屋署後台", "房屋署后台"), ("Housing Department", "房屋署", "房屋署")),
    }
    return [
        {
            "client_id": f"{code}-backend",
            "client_name": dict(zip(("en", "zh-Hant", "zh-Hans"), name, strict=True)),
            "department": dict(zip(("en", "zh-Hant", "zh-Hans"), department, strict=True)),
            "grant_types": ["client_credentials"],
            "scopes": [f"{code}.records"],
        }
        for code, (name, department) in departments.items()
    ]


async def register_demo_clients(db: AsyncSession, service: OidcService, data_dir: Path) -> list[str]:
    """Register the demo clients that are missing and write their private keys; returns their ids."""
    written = []
    for definition in _definitions(service.issuer):
        if await service.clients.get(db, definition["client_id"], fresh=True) is not None:
            continue
        key = ECKey.generate_key("P-256", auto_kid=True)
        metadata = ClientMetadata.model_validate(
            {
                **definition,
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": [key.as_dict(private=False)]},
                "allow_loopback_http": True,
            }
        )
        await service.clients.register(db, metadata)
        _write_private(
            data_dir / "clients" / f"{metadata.client_id}.json",
            {
                "client_id": metadata.client_id,
                "issuer": service.issuer,
                "discovery": f"{service.issuer}/.well-known/openid-configuration",
                "token_endpoint_auth_method": "private_key_jwt",
                "grant_types": [g.value for g in metadata.grant_types],
                "scopes": metadata.scopes,
                "items": metadata.items,
                "redirect_uris": metadata.redirect_uris,
                "fapi": metadata.fapi,
                "private_jwk": {**key.as_dict(private=True), "alg": "ES256", "use": "sig"},
            },
        )
        written.append(metadata.client_id)
    await db.commit()
    return written


def _write_private(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False))
