"""A software WebAuthn authenticator and client, for tests and benchmarks (no browser, no hardware).

It plays both halves of a ceremony as WebAuthn Level 3 describes them: the
client (the browser: it builds ``clientDataJSON`` and serialises the result with
``PublicKeyCredential.toJSON()``) and the authenticator (CTAP2's
``authenticatorMakeCredential`` and ``authenticatorGetAssertion``: it makes keys,
keeps discoverable credentials, counts signatures and signs).

The dicts it returns have exactly the JSON shape that a browser posts and that
py_webauthn's ``verify_registration_response`` / ``verify_authentication_response``
accept; every binary value is base64url without padding.

Only composition here: keys and signatures come from ``cryptography`` (ECDSA
P-256 with SHA-256, COSE alg -7; Ed25519, COSE alg -8), CBOR from ``cbor2``.

Unlike a real browser, the client half does not refuse an RP ID that the origin
may not claim, so tests can present what only a compromised client could send.
The knobs of :meth:`SoftAuthenticator.get` and :meth:`SoftAuthenticator.create`
build the attacks: another origin, another RP ID, user verification or presence
not performed, an altered signature, a signature by another key (a forgery), a
chosen or rolled-back counter, another user handle. A replay needs no knob: post
the same dict twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

ES256 = -7  # COSE: ECDSA with SHA-256 on P-256
EDDSA = -8  # COSE: EdDSA (here Ed25519)
SUPPORTED_ALGORITHMS = (ES256, EDDSA)

# Authenticator data flags (WebAuthn Level 3, section 6.1).
FLAG_UP = 0x01  # user present
FLAG_UV = 0x04  # user verified
FLAG_BE = 0x08  # backup eligible
FLAG_BS = 0x10  # backed up
FLAG_AT = 0x40  # attested credential data included
FLAG_ED = 0x80  # extension data included

# COSE key parameters (RFC 9052/9053).
_KTY, _ALG, _CRV, _X, _Y = 1, 3, -1, -2, -3
_KTY_OKP, _KTY_EC2 = 1, 2
_CRV_P256, _CRV_ED25519 = 1, 6

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class SoftAuthnError(Exception):
    """The ceremony failed the way a browser's would; ``name`` is the DOMException it would raise."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_private_key(algorithm: int = ES256) -> PrivateKey:
    if algorithm == ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == EDDSA:
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported COSE algorithm {algorithm}")


def cose_public_key(key: PrivateKey) -> bytes:
    """The credential public key as a COSE_Key, CTAP2-canonical CBOR."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        cose: dict[int, Any] = {
            _KTY: _KTY_EC2,
            _ALG: ES256,
            _CRV: _CRV_P256,
            _X: numbers.x.to_bytes(32, "big"),
            _Y: numbers.y.to_bytes(32, "big"),
        }
    else:
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        cose = {_KTY: _KTY_OKP, _ALG: EDDSA, _CRV: _CRV_ED25519, _X: raw}
    encoded: bytes = cbor2.dumps(cose, canonical=True)
    return encoded


def spki_public_key(key: PrivateKey) -> bytes:
    """The public key as DER SubjectPublicKeyInfo (``AuthenticatorAttestationResponse.getPublicKey()``)."""
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: PrivateKey, data: bytes) -> bytes:
    """A WebAuthn signature: ASN.1 DER (r, s) for ECDSA, the raw 64 bytes for Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data)


def algorithm_of(key: PrivateKey) -> int:
    return ES256 if isinstance(key, ec.EllipticCurvePrivateKey) else EDDSA


def altered(signature: bytes) -> bytes:
    """The same signature with one bit of its last byte flipped: still well-formed DER, no longer valid."""
    return signature[:-1] + bytes([signature[-1] ^ 0x01])


@dataclass
class StoredCredential:
    """A discoverable (resident) credential as the authenticator keeps it."""

    credential_id: bytes
    rp_id: str
    user_handle: bytes
    user_name: str
    private_key: PrivateKey
    sign_count: int = 0

    @property
    def algorithm(self) -> int:
        return algorithm_of(self.private_key)

    @property
    def public_key(self) -> bytes:
        """The COSE public key, as the relying party stores it."""
        return cose_public_key(self.private_key)


@dataclass
class SoftAuthenticator:
    """A platform authenticator holding discoverable credentials, with the browser in front of it.

    ``backup_eligible``/``backed_up`` set the BE/BS flags (a synced passkey has both).
    ``counter`` False keeps the signature counter at 0, as synced passkeys do.
    """

    aaguid: bytes = bytes(16)
    attachment: str = "platform"
    transports: Sequence[str] = ("hybrid", "internal")
    backup_eligible: bool = False
    backed_up: bool = False
    counter: bool = True
    credential_id_length: int = 32
    credentials: dict[bytes, StoredCredential] = field(default_factory=dict)

    # --- registration: navigator.credentials.create() -------------------------------------------

    def create(
        self,
        options_json: Mapping[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        user_present: bool = True,
        user_verified: bool = True,
        algorithm: int | None = None,
        client_data_type: str = "webauthn.create",
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        """Make a new discoverable credential for ``options_json`` (PublicKeyCredentialCreationOptionsJSON).

        ``rp_id`` overrides the RP ID whose hash goes into the authenticator data (the credential
        is still stored under the options' RP ID); the other keywords build malformed ceremonies.
        """
        options = _unwrap(options_json)
        rp = options.get("rp") or {}
        stored_rp_id = str(rp.get("id") or _host_of(origin))
        user = options["user"]
        user_handle = b64url_decode(str(user["id"]))
        chosen = self._choose_algorithm(options, algorithm)
        for excluded in options.get("excludeCredentials") or []:
            known = self.credentials.get(b64url_decode(str(excluded["id"])))
            if known is not None and known.rp_id == stored_rp_id:
                raise SoftAuthnError("InvalidStateError", "this authenticator already holds an excluded credential")

        client_data = _client_data(client_data_type, str(options["challenge"]), origin, cross_origin)
        key = new_private_key(chosen)
        credential_id = secrets.token_bytes(self.credential_id_length)
        # A discoverable credential replaces any other this authenticator holds for the same RP and user.
        for old_id in [
            c.credential_id
            for c in self.credentials.values()
            if c.rp_id == stored_rp_id and c.user_handle == user_handle
        ]:
            del self.credentials[old_id]
        stored = StoredCredential(credential_id, stored_rp_id, user_handle, str(user.get("name", "")), key)
        self.credentials[credential_id] = stored

        attested = self.aaguid + len(credential_id).to_bytes(2, "big") + credential_id + cose_public_key(key)
        flags = self._flags(user_present, user_verified) | FLAG_AT
        auth_data = _authenticator_data(rp_id or stored_rp_id, flags, stored.sign_count) + attested
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data}, canonical=True)
        extensions = options.get("extensions") or {}
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "transports": sorted(self.transports),
                "authenticatorData": b64url(auth_data),
                "publicKey": b64url(spki_public_key(key)),
                "publicKeyAlgorithm": chosen,
            },
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {"credProps": {"rk": True}} if extensions.get("credProps") else {},
        }

    # --- authentication: navigator.credentials.get() --------------------------------------------

    def get(
        self,
        options_json: Mapping[str, Any],
        origin: str,
        credential_id: bytes | None = None,
        *,
        rp_id: str | None = None,
        user_present: bool = True,
        user_verified: bool = True,
        tamper_signature: bool = False,
        forge: bool = False,
        sign_count: int | None = None,
        user_handle: bytes | None = None,
        omit_user_handle: bool = False,
        client_data_type: str = "webauthn.get",
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        """An assertion for ``options_json`` (PublicKeyCredentialRequestOptionsJSON).

        Without ``allowCredentials`` (a usernameless sign-in) the authenticator offers its
        credentials for the RP ID and the person picks one: ``credential_id``, or else the newest.

        Attack knobs: ``origin`` as given goes into clientDataJSON; ``rp_id`` overrides the RP ID
        hashed into the authenticator data; ``user_verified``/``user_present`` False clear UV/UP;
        ``tamper_signature`` flips a bit of the signature; ``forge`` signs with a key the relying
        party never saw; ``sign_count`` puts a chosen counter in the data (a cloned authenticator);
        ``user_handle``/``omit_user_handle`` change the userHandle sent.
        """
        options = _unwrap(options_json)
        stored_rp_id = str(options.get("rpId") or _host_of(origin))
        credential = self._pick(stored_rp_id, options.get("allowCredentials") or [], credential_id)
        client_data = _client_data(client_data_type, str(options["challenge"]), origin, cross_origin)
        if sign_count is None:
            if self.counter:
                credential.sign_count += 1
            count = credential.sign_count
        else:
            count = sign_count
        auth_data = _authenticator_data(rp_id or stored_rp_id, self._flags(user_present, user_verified), count)
        key = new_private_key(credential.algorithm) if forge else credential.private_key
        signature = sign(key, auth_data + hashlib.sha256(client_data).digest())
        if tamper_signature:
            signature = altered(signature)
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if not omit_user_handle:
            response["userHandle"] = b64url(credential.user_handle if user_handle is None else user_handle)
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "response": response,
            "authenticatorAttachment": self.attachment,
            "clientExtensionResults": {},
        }

    # --- helpers --------------------------------------------------------------------------------

    def credentials_for(self, rp_id: str) -> list[StoredCredential]:
        """The discoverable credentials for an RP, oldest first."""
        return [c for c in self.credentials.values() if c.rp_id == rp_id]

    def _pick(self, rp_id: str, allowed: Sequence[Mapping[str, Any]], credential_id: bytes | None) -> StoredCredential:
        candidates = self.credentials_for(rp_id)
        if allowed:
            allowed_ids = {b64url_decode(str(a["id"])) for a in allowed}
            candidates = [c for c in candidates if c.credential_id in allowed_ids]
        if credential_id is not None:
            candidates = [c for c in candidates if c.credential_id == credential_id]
        if not candidates:
            raise SoftAuthnError("NotAllowedError", f"no credential for {rp_id!r} on this authenticator")
        return candidates[-1]

    def _choose_algorithm(self, options: Mapping[str, Any], wanted: int | None) -> int:
        offered = [int(p["alg"]) for p in options.get("pubKeyCredParams") or [] if p.get("type") == "public-key"]
        if wanted is not None:
            if offered and wanted not in offered:
                raise SoftAuthnError("NotSupportedError", f"the relying party does not accept algorithm {wanted}")
            return wanted
        for alg in offered or [ES256]:  # the RP's order of preference; an empty list means ES256 (and RS256)
            if alg in SUPPORTED_ALGORITHMS:
                return alg
        raise SoftAuthnError("NotSupportedError", "no algorithm in common with the relying party")

    def _flags(self, user_present: bool, user_verified: bool) -> int:
        flags = (FLAG_UP if user_present else 0) | (FLAG_UV if user_verified else 0)
        if self.backup_eligible:
            flags |= FLAG_BE
            if self.backed_up:
                flags |= FLAG_BS
        return flags


def _unwrap(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept both the bare options and the ``{"publicKey": {...}}`` form given to the browser API."""
    inner = options.get("publicKey")
    return inner if isinstance(inner, Mapping) else options


def _host_of(origin: str) -> str:
    host = urlsplit(origin).hostname
    if not host:
        raise SoftAuthnError("SecurityError", f"{origin!r} is not an origin")
    return host


def _client_data(kind: str, challenge: str, origin: str, cross_origin: bool) -> bytes:
    """CollectedClientData serialised as browsers do: compact JSON, these keys in this order."""
    normalised = b64url(b64url_decode(challenge))
    body = {"type": kind, "challenge": normalised, "origin": origin, "crossOrigin": cross_origin}
    return json.dumps(body, separators=(",", ":")).encode()


def _authenticator_data(rp_id: str, flags: int, sign_count: int) -> bytes:
    return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + sign_count.to_bytes(4, "big")
