"""WebAuthn passkeys (py_webauthn): registration and usernameless sign-in with discoverable credentials.

Every ceremony has a one-time challenge kept server-side in the browser session;
it is removed before the response is checked, so an assertion cannot be replayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

# RS256 last: some Windows Hello (TPM) authenticators offer nothing else.
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
TIMEOUT_MS = 120_000


class PasskeyError(ValueError):
    """The browser's response did not verify; ``reason`` is a message id for the person."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    rp_id: str
    name: str
    origin: str


@dataclass(frozen=True)
class NewPasskey:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    backed_up: bool
    transports: list[str]


def registration_options(
    rp: RelyingParty, *, user_handle: bytes, user_name: str, display_name: str, existing: list[bytes]
) -> tuple[str, bytes]:
    """Options JSON for navigator.credentials.create(), and the challenge to keep."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=rp.name,
        user_id=user_handle,
        user_name=user_name,
        user_display_name=display_name,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=credential) for credential in existing],
        supported_pub_key_algs=ALGORITHMS,
    )
    return options_to_json(options), options.challenge


def verify_registration(rp: RelyingParty, response: dict[str, Any], challenge: bytes) -> NewPasskey:
    try:
        verified = verify_registration_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
            supported_pub_key_algs=ALGORITHMS,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError("Your passkey could not be registered. Try again.", str(exc)) from exc
    transports = response.get("response", {}).get("transports") or []
    return NewPasskey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        backed_up=bool(verified.credential_backed_up),
        transports=[str(t) for t in transports if isinstance(t, str)][:8],
    )


def authentication_options(rp: RelyingParty) -> tuple[str, bytes]:
    """Options for a usernameless sign-in: no allowCredentials, the authenticator offers its passkeys."""
    options = generate_authentication_options(
        rp_id=rp.rp_id, timeout=TIMEOUT_MS, user_verification=UserVerificationRequirement.REQUIRED
    )
    return options_to_json(options), options.challenge


def credential_id_of(response: dict[str, Any]) -> bytes:
    raw = response.get("rawId") or response.get("id")
    if not isinstance(raw, str) or not 1 <= len(raw) <= 1400:
        raise PasskeyError("The passkey response was malformed.")
    try:
        return base64url_to_bytes(raw)
    except ValueError as exc:
        raise PasskeyError("The passkey response was malformed.") from exc


def user_handle_of(response: dict[str, Any]) -> bytes | None:
    handle = response.get("response", {}).get("userHandle") if isinstance(response.get("response"), dict) else None
    if not isinstance(handle, str) or not handle:
        return None
    try:
        return base64url_to_bytes(handle)
    except ValueError:
        return None


def verify_assertion(
    rp: RelyingParty, response: dict[str, Any], challenge: bytes, public_key: bytes, sign_count: int
) -> int:
    """Check the signature, origin, RP id, challenge, user verification and counter; return the new count."""
    try:
        verified = verify_authentication_response(
            credential=response,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        raise PasskeyError("That passkey could not be verified. Try again.", str(exc)) from exc
    return int(verified.new_sign_count)


def challenge_to_text(challenge: bytes) -> str:
    return bytes_to_base64url(challenge)


def challenge_from_text(text: str) -> bytes:
    return base64url_to_bytes(text)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PasskeyError("The passkey response was malformed.") from exc
    if not isinstance(value, dict):
        raise PasskeyError("The passkey response was malformed.")
    return value
