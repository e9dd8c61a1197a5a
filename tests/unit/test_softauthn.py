"""The software authenticator interoperates with py_webauthn, and each of its attack knobs is refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from tests.softauthn import EDDSA, ES256, SoftAuthenticator, SoftAuthnError, b64url_decode

RP_ID = "bauhinia.test"
ORIGIN = "https://bauhinia.test"
USER_HANDLE = bytes(range(32))
ALGORITHMS = [COSEAlgorithmIdentifier.ECDSA_SHA_256, COSEAlgorithmIdentifier.EDDSA]
B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def registration_options(exclude: list[bytes] | None = None) -> tuple[dict[str, Any], bytes]:
    options = generate_registration_options(
        rp_id=RP_ID,
        rp_name="Bauhinia",
        user_id=USER_HANDLE,
        user_name="resident@example.hk",
        user_display_name="Ka Ming Tester",
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude or []],
        supported_pub_key_algs=ALGORITHMS,
    )
    return json.loads(options_to_json(options)), options.challenge


def authentication_options() -> tuple[dict[str, Any], bytes]:
    options = generate_authentication_options(rp_id=RP_ID, user_verification=UserVerificationRequirement.REQUIRED)
    return json.loads(options_to_json(options)), options.challenge


def verify_registration(response: dict[str, Any], challenge: bytes, origin: str = ORIGIN) -> VerifiedRegistration:
    return verify_registration_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=origin,
        require_user_verification=True,
        supported_pub_key_algs=ALGORITHMS,
    )


def register(authenticator: SoftAuthenticator, algorithm: int | None = None) -> VerifiedRegistration:
    options, challenge = registration_options()
    return verify_registration(authenticator.create(options, ORIGIN, algorithm=algorithm), challenge)


def check_assertion(response: dict[str, Any], challenge: bytes, public_key: bytes, count: int) -> int:
    verified = verify_authentication_response(
        credential=response,
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=public_key,
        credential_current_sign_count=count,
        require_user_verification=True,
    )
    return int(verified.new_sign_count)


def test_registration_verifies_and_stores_a_discoverable_credential() -> None:
    authenticator = SoftAuthenticator()
    verified = register(authenticator)
    assert verified.fmt == "none"
    assert verified.user_verified
    assert verified.sign_count == 0
    assert verified.credential_public_key == authenticator.credentials[verified.credential_id].public_key
    [stored] = authenticator.credentials_for(RP_ID)
    assert stored.user_handle == USER_HANDLE
    assert stored.algorithm == ES256


def test_usernameless_sign_in_verifies_and_the_counter_grows() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    count = registered.sign_count
    for expected in (1, 2, 3):
        options, challenge = authentication_options()
        assert "allowCredentials" not in options or not options["allowCredentials"]
        response = authenticator.get(options, ORIGIN)
        assert b64url_decode(response["response"]["userHandle"]) == USER_HANDLE
        assert b64url_decode(response["rawId"]) == registered.credential_id
        count = check_assertion(response, challenge, registered.credential_public_key, count)
        assert count == expected


def test_ed25519_credentials_interoperate() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator, algorithm=EDDSA)
    options, challenge = authentication_options()
    response = authenticator.get(options, ORIGIN)
    assert check_assertion(response, challenge, registered.credential_public_key, 0) == 1


def test_synced_passkeys_carry_backup_flags_and_no_counter() -> None:
    authenticator = SoftAuthenticator(backup_eligible=True, backed_up=True, counter=False)
    registered = register(authenticator)
    assert registered.credential_backed_up
    options, challenge = authentication_options()
    assert check_assertion(authenticator.get(options, ORIGIN), challenge, registered.credential_public_key, 0) == 0


def test_responses_have_the_browser_json_shape() -> None:
    authenticator = SoftAuthenticator()
    options, _ = registration_options()
    created = authenticator.create(options, ORIGIN)
    assert set(created) == {"id", "rawId", "type", "response", "authenticatorAttachment", "clientExtensionResults"}
    assert created["type"] == "public-key"
    assert created["id"] == created["rawId"]
    assert {"clientDataJSON", "attestationObject", "transports"} <= set(created["response"])
    options, _ = authentication_options()
    asserted = authenticator.get(options, ORIGIN)
    assert set(asserted["response"]) == {"clientDataJSON", "authenticatorData", "signature", "userHandle"}
    for response in (created, asserted):
        assert json.loads(json.dumps(response)) == response
        for name, value in response["response"].items():
            if name not in {"transports", "publicKeyAlgorithm"}:
                assert B64URL.match(value), name  # base64url, no padding
    client_data = json.loads(b64url_decode(asserted["response"]["clientDataJSON"]))
    assert client_data == {
        "type": "webauthn.get",
        "challenge": options["challenge"],
        "origin": ORIGIN,
        "crossOrigin": False,
    }


def test_a_chosen_credential_is_used_among_several() -> None:
    authenticator = SoftAuthenticator()
    first = register(authenticator)
    other_options, _ = registration_options()
    other_options["user"]["id"] = "b3RoZXI"  # another person on the same device
    authenticator.create(other_options, ORIGIN)
    options, challenge = authentication_options()
    response = authenticator.get(options, ORIGIN, credential_id=first.credential_id)
    assert check_assertion(response, challenge, first.credential_public_key, 0) == 1


def test_an_unknown_rp_or_credential_is_not_allowed() -> None:
    authenticator = SoftAuthenticator()
    register(authenticator)
    options, _ = authentication_options()
    with pytest.raises(SoftAuthnError, match="NotAllowedError"):
        authenticator.get({**options, "rpId": "elsewhere.test"}, "https://elsewhere.test")
    with pytest.raises(SoftAuthnError, match="NotAllowedError"):
        authenticator.get({**options, "allowCredentials": [{"type": "public-key", "id": "AAAA"}]}, ORIGIN)


def test_an_excluded_credential_blocks_a_second_registration() -> None:
    authenticator = SoftAuthenticator()
    registered = register(authenticator)
    options, _ = registration_options(exclude=[registered.credential_id])
    with pytest.raises(SoftAuthnError, match="InvalidStateError"):
        authenticator.create(options, ORIGIN)


# --- attacks: each must be refused by the relying party's library ----------------------------------


@pytest.fixture
def enrolled() -> tuple[SoftAuthenticator, VerifiedRegistration]:
    authenticator = SoftAuthenticator()
    return authenticator, register(authenticator)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"tamper_signature": True}, "Could not verify authentication signature"),
        ({"forge": True}, "Could not verify authentication signature"),
        ({"user_verified": False}, "User verification is required"),
        ({"user_present": False}, "User was not present"),
        ({"rp_id": "evil.test"}, "Unexpected RP ID hash"),
        ({"client_data_type": "webauthn.create"}, "Unexpected client data type"),
    ],
)
def test_tampered_assertions_are_refused(
    enrolled: tuple[SoftAuthenticator, VerifiedRegistration], knobs: dict[str, Any], message: str
) -> None:
    authenticator, registered = enrolled
    options, challenge = authentication_options()
    response = authenticator.get(options, ORIGIN, **knobs)
    with pytest.raises(InvalidAuthenticationResponse, match=message):
        check_assertion(response, challenge, registered.credential_public_key, 0)


def test_a_cloned_authenticator_is_caught_by_its_counter(
    enrolled: tuple[SoftAuthenticator, VerifiedRegistration],
) -> None:
    authenticator, registered = enrolled
    options, challenge = authentication_options()
    count = check_assertion(authenticator.get(options, ORIGIN), challenge, registered.credential_public_key, 0)
    options, challenge = authentication_options()
    clone = authenticator.get(options, ORIGIN, sign_count=count)  # a copy of the key that never saw that use
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        check_assertion(clone, challenge, registered.credential_public_key, count)


def test_wrong_origin_is_refused(enrolled: tuple[SoftAuthenticator, VerifiedRegistration]) -> None:
    authenticator, registered = enrolled
    options, challenge = authentication_options()
    response = authenticator.get(options, "https://bauhinia.test.evil.example")
    with pytest.raises(InvalidAuthenticationResponse, match="Unexpected client data origin"):
        check_assertion(response, challenge, registered.credential_public_key, 0)


def test_wrong_challenge_is_refused(enrolled: tuple[SoftAuthenticator, VerifiedRegistration]) -> None:
    authenticator, registered = enrolled
    options, _ = authentication_options()
    _, other_challenge = authentication_options()
    response = authenticator.get(options, ORIGIN)
    with pytest.raises(InvalidAuthenticationResponse, match="challenge"):
        check_assertion(response, other_challenge, registered.credential_public_key, 0)


def test_a_replayed_assertion_is_refused_by_its_counter(
    enrolled: tuple[SoftAuthenticator, VerifiedRegistration],
) -> None:
    authenticator, registered = enrolled
    options, challenge = authentication_options()
    response = authenticator.get(options, ORIGIN)
    count = check_assertion(response, challenge, registered.credential_public_key, 0)
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        check_assertion(response, challenge, registered.credential_public_key, count)


def test_registration_attacks_are_refused() -> None:
    authenticator = SoftAuthenticator()
    options, challenge = registration_options()
    with pytest.raises(InvalidRegistrationResponse, match="origin"):
        verify_registration(authenticator.create(options, "https://evil.example"), challenge)
    with pytest.raises(InvalidRegistrationResponse, match="User verification"):
        verify_registration(authenticator.create(options, ORIGIN, user_verified=False), challenge)
    with pytest.raises(InvalidRegistrationResponse, match="RP ID"):
        verify_registration(authenticator.create(options, ORIGIN, rp_id="evil.test"), challenge)
