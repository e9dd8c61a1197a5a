"""A registered system's identity and private keys, as a department keeps them (the demo writes them to
``<data-dir>/members/<CODE>-<subsystem>.json`` beside its client's file in ``<data-dir>/clients/``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

from bauhinia.sdk.jose import private_key


@dataclass(frozen=True)
class SystemCredentials:
    system_id: str
    client_id: str
    gateway: str  # the gateway's issuer URL
    # repr=False: credentials end up in tracebacks and logs; private keys must not
    client_private_jwk: dict[str, Any] = field(repr=False)
    signing_private_jwk: dict[str, Any] = field(repr=False)
    encryption_private_jwk: dict[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "gateway", self.gateway.rstrip("/"))
        if not self.gateway.startswith(("https://", "http://")):
            raise ValueError("the gateway must be an http(s) URL")
        self.client_key()
        self.signing_key()
        self.encryption_key()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SystemCredentials:
        """Read a members file and the client file it names (relative paths are taken from the members file)."""
        members_file = Path(path)
        member = _read(members_file)
        client_file = Path(str(member["client_file"]))
        if not client_file.is_absolute():
            client_file = members_file.parent / client_file
        client = _read(client_file)
        if client.get("client_id", member["client_id"]) != member["client_id"]:
            raise ValueError(f"{client_file} is the file of another client")
        return cls(
            system_id=str(member["system_id"]),
            client_id=str(member["client_id"]),
            gateway=str(member["gateway"]),
            client_private_jwk=dict(client["private_jwk"]),
            signing_private_jwk=dict(member["signing_private_jwk"]),
            encryption_private_jwk=dict(member["encryption_private_jwk"]),
        )

    def client_key(self) -> ECKey:
        """The key of the OpenID client's private_key_jwt assertions."""
        return private_key(self.client_private_jwk, "client key")

    def signing_key(self) -> ECKey:
        """The key the system signs its responses with (a key of its registered signing_jwks)."""
        return private_key(self.signing_private_jwk, "signing key")

    def encryption_key(self) -> ECKey:
        """The key that opens data released to this system (a key of its registered encryption_jwks)."""
        return private_key(self.encryption_private_jwk, "encryption key")


def _read(path: Path) -> dict[str, Any]:
    content = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(content, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return content
