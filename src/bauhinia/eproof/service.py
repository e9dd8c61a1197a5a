"""e-Proof: credential types, issuance in two forms from the same claims, revocation and suspension
through status lists, the transparency log, and verification (the only module other domains import).

Issuance signs with the issuing department's key (ES256, generated and sealed by the platform), binds
the SD-JWT VC to the resident's wallet key, and commits the credential with its log entry in one
transaction of the log's batch: a credential is never stored unlogged. Log entries hold digests only.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Request
from joserfc.jwk import ECKey, KeySet
from jsonschema import Draft202012Validator
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bauhinia.core import audit
from bauhinia.core.database import utcnow
from bauhinia.core.keys import KeyRing
from bauhinia.eproof.log import TransparencyLog, log_signer
from bauhinia.eproof.models import (
    Checkpoint,
    Cosignature,
    Credential,
    CredentialType,
    HolderKey,
    IssuerKey,
    LogEntry,
    StatusList,
)
from bauhinia.eproof.schemas import (
    NAME_BY_STATUS,
    STATUS_BY_NAME,
    CredentialStatus,
    CredentialTypeRegistration,
    IssuanceRequest,
    IssuedCredential,
    RegisteredCredentialType,
    StatusChange,
    StatusName,
)
from bauhinia.exchange.service import ExchangeService
from bauhinia.identity.service import IdentityService
from bauhinia.oidc.service import public_key_set
from bauhinia.sdk import printed, sdjwt
from bauhinia.sdk.status_list import StatusList as Bits
from bauhinia.sdk.status_list import status_list_token
from bauhinia.sdk.transparency import LogProofError, NoteVerifier, parse_note, verify_checkpoint, verify_cosignature
from bauhinia.sdk.verifier import Trust, Verdict, check_log_proof, trust_from, verify

STATUS_LIST_SIZE = 131_072  # credentials per list (32 KiB at 2 bits, a few hundred bytes compressed)
STATUS_TOKEN_LIFETIME = 86_400
STATUS_TOKEN_TTL = 300
STATUS_TOKEN_REFRESH = timedelta(hours=12)


class EproofError(Exception):
    """A refusal the API answers with a problem: ``status`` is its HTTP status."""

    def __init__(self, status: int, detail: str, location: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.location = status, detail, location


@dataclass(frozen=True)
class Draft:
    """One credential's content before it is signed in its two forms."""

    kind: CredentialType
    claims: dict[str, Any]
    key: ECKey
    credential_id: str
    issued_at: datetime
    expires_at: datetime
    status_list_id: str
    status_index: int


def _sealing_context(kid: str) -> str:
    return f"eproof-key:{kid}"


class EproofService:
    def __init__(self, keyring: KeyRing, public_url: str, identity: IdentityService, exchange: ExchangeService) -> None:
        self.keyring = keyring
        self.public_url = public_url.rstrip("/")
        parts = urlsplit(self.public_url)
        self.log = TransparencyLog(log_signer(keyring, f"{parts.netloc}{parts.path}/eproof/log"))
        self.identity = identity
        self.exchange = exchange
        self._issuer_keys: dict[str, ECKey] = {}
        self.witness_vkeys: list[str] = []  # set by the app: the settings' and, in demo, the partner's
        self.witness_files: Path | None = None

    # --- names -------------------------------------------------------------------------------------

    def issuer_url(self, member_id: str) -> str:
        return f"{self.public_url}/eproof/issuers/{member_id}"

    def type_url(self, type_id: str) -> str:
        return f"{self.public_url}/eproof/types/{type_id}"

    def status_url(self, list_id: str) -> str:
        return f"{self.public_url}/eproof/status/{list_id}"

    # --- credential types ----------------------------------------------------------------------------

    async def register_type(
        self, db: AsyncSession, registration: CredentialTypeRegistration, *, actor: str
    ) -> RegisteredCredentialType:
        if await self.exchange.active_member(db, registration.issuer) is None:
            raise EproofError(422, f"No active member {registration.issuer!r}: register it first.", "issuer")
        if await db.get(CredentialType, registration.id) is not None:
            raise EproofError(409, f"Credential type {registration.id!r} is already registered.")
        row = CredentialType(
            id=registration.id,
            issuer_member_id=registration.issuer,
            name=registration.name.model_dump(by_alias=True),
            claims_schema=registration.claims_schema,
            selective=registration.selective,
            printed=registration.printed,
            claim_titles={k: v.model_dump(by_alias=True) for k, v in registration.claim_titles.items()},
            validity_days=registration.validity_days,
            created_at=utcnow(),
        )
        db.add(row)
        try:
            await db.flush()
        except IntegrityError as exc:
            await db.rollback()
            raise EproofError(409, f"Credential type {registration.id!r} is already registered.") from exc
        await self._ensure_issuer_key(db, registration.issuer)
        await audit.record(db, "eproof.type_registered", actor=actor, subject=f"credential-type:{row.id}")
        await db.commit()
        return type_view(row)

    async def types(self, db: AsyncSession) -> list[RegisteredCredentialType]:
        return [type_view(r) for r in await db.scalars(select(CredentialType).order_by(CredentialType.id))]

    async def credential_type(self, db: AsyncSession, type_id: str) -> CredentialType | None:
        return await db.get(CredentialType, type_id)

    # --- keys ----------------------------------------------------------------------------------------

    async def _ensure_issuer_key(self, db: AsyncSession, member_id: str) -> None:
        if await db.scalar(select(IssuerKey.kid).where(IssuerKey.issuer_member_id == member_id)) is None:
            self._new_issuer_key(db, member_id, utcnow())
            await db.flush()

    def _new_issuer_key(self, db: AsyncSession, member_id: str, active_from: datetime) -> str:
        key = ECKey.generate_key("P-256", auto_kid=True)
        db.add(
            IssuerKey(
                kid=key.kid,
                issuer_member_id=member_id,
                public_jwk=key.as_dict(private=False) | {"use": "sig", "alg": "ES256"},
                private_sealed=self.keyring.seal(
                    json.dumps(key.as_dict(private=True)).encode(), _sealing_context(key.kid or "")
                ),
                created_at=utcnow(),
                active_from=active_from,
            )
        )
        return key.kid or ""

    async def rotate_issuer_key(
        self, db: AsyncSession, member_id: str, activate_in: timedelta, actor: str
    ) -> tuple[str, datetime]:
        """A new signing key for the member, published now and signing from ``now + activate_in``, when
        the keys it replaces retire (they stay published: what they signed lives on). Committed."""
        start = utcnow() + activate_in
        replaced = list(
            await db.scalars(
                select(IssuerKey).where(IssuerKey.issuer_member_id == member_id, IssuerKey.retired_at.is_(None))
            )
        )
        if not replaced:
            raise EproofError(404, f"{member_id} has no issuing key: register a credential type for it first.")
        for old in replaced:
            old.retired_at = start
        kid = self._new_issuer_key(db, member_id, start)
        await audit.record(
            db,
            "eproof.issuer_key_rotated",
            actor=actor,
            subject=f"eproof-issuer:{member_id}",
            data={"kid": kid, "signs_from": start.isoformat(timespec="seconds"), "retires": [k.kid for k in replaced]},
        )
        await db.commit()
        return kid, start

    async def issuer_key(self, db: AsyncSession, member_id: str) -> ECKey:
        """The member's signing key now: looked up every time (a rotation takes effect at its time, in
        every process, and a restored table is noticed), opened once per kid."""
        now = utcnow()
        row = await db.scalar(
            select(IssuerKey)
            .where(
                IssuerKey.issuer_member_id == member_id,
                IssuerKey.active_from <= now,
                or_(IssuerKey.retired_at.is_(None), IssuerKey.retired_at > now),
            )
            .order_by(IssuerKey.active_from.desc())
            .limit(1)
        )
        if row is None:
            raise EproofError(409, f"{member_id} has no issuing key: register a credential type for it first.")
        key = self._issuer_keys.get(row.kid)
        if key is None:
            key = ECKey.import_key(json.loads(self.keyring.open(row.private_sealed, _sealing_context(row.kid))))
            self._issuer_keys[row.kid] = key
        return key

    async def issuer_jwks(self, db: AsyncSession) -> dict[str, dict[str, Any]]:
        """Every issuer's public keys, by member id (retired keys stay: credentials they signed live on)."""
        jwks: dict[str, dict[str, Any]] = {}
        for row in await db.scalars(select(IssuerKey).order_by(IssuerKey.created_at)):
            jwks.setdefault(row.issuer_member_id, {"keys": []})["keys"].append(row.public_jwk)
        return jwks

    async def holder_key(self, db: AsyncSession, resident_id: str) -> ECKey:
        """The resident's wallet key (made on first use)."""
        row = await db.get(HolderKey, resident_id)
        if row is None:
            key = ECKey.generate_key("P-256")
            row = HolderKey(
                resident_id=resident_id,
                public_jwk=key.as_dict(private=False),
                private_sealed=self.keyring.seal(
                    json.dumps(key.as_dict(private=True)).encode(), f"holder:{resident_id}"
                ),
                created_at=utcnow(),
            )
            db.add(row)
            await db.flush()
            return key
        return ECKey.import_key(json.loads(self.keyring.open(row.private_sealed, f"holder:{resident_id}")))

    # --- issuance ------------------------------------------------------------------------------------

    async def issue(
        self, db: AsyncSession, engine: AsyncEngine, client_id: str, body: IssuanceRequest
    ) -> IssuedCredential:
        kind = await self._issuable_type(db, client_id, body.type)
        problems = sorted(Draft202012Validator(kind.claims_schema).iter_errors(body.claims), key=str)
        if problems:
            path = "/".join(str(p) for p in problems[0].absolute_path)
            raise EproofError(
                422, f"The claims do not fit {kind.id}: {problems[0].message}", f"claims/{path}".rstrip("/")
            )
        resident = await self.identity.find_resident(db, body.holder.identity_number)
        if resident is None or "@" in body.holder.identity_number:
            raise EproofError(422, "No resident with that identity card number has an account.", "holder")
        holder = await self.holder_key(db, resident.id)
        issuer_key = await self.issuer_key(db, kind.issuer_member_id)
        list_id, index = await self._status_slot(db, kind.issuer_member_id)
        await db.commit()  # the slot is taken either way; no transaction is held while the log writes
        now = utcnow()
        credential_id = str(uuid.uuid4())
        expires = now + timedelta(days=kind.validity_days)
        draft = Draft(kind, body.claims, issuer_key, credential_id, now, expires, list_id, index)
        sd_jwt, printed_text = self._sd_jwt(draft, holder), self._printed(draft)
        digest = sdjwt.credential_digest(sd_jwt)
        entry = log_entry("issued", kind.id, credential_id, digest, printed_digest(printed_text), now)

        async def store(session: AsyncSession, log_index: int) -> None:
            session.add(
                Credential(
                    id=credential_id,
                    type_id=kind.id,
                    resident_id=resident.id,
                    claims=body.claims,
                    sd_jwt=sd_jwt,
                    printed=printed_text,
                    digest=digest,
                    status_list_id=list_id,
                    status_index=index,
                    status=CredentialStatus.VALID,
                    log_index=log_index,
                    issued_at=now,
                    expires_at=expires,
                    updated_at=now,
                )
            )
            await audit.record(
                session,
                "eproof.issued",
                actor=f"client:{client_id}",
                subject=f"credential:{credential_id}",
                data={"type": kind.id, "log_index": log_index},
            )

        log_index = await self.log.append(engine, entry, store)
        proof = await self.log.proof_bundle(db, log_index, entry)
        assert proof is not None
        return IssuedCredential(
            id=credential_id,
            type=kind.id,
            issuer=kind.issuer_member_id,
            status=StatusName.VALID,
            issued_at=now.isoformat(),
            expires_at=expires.isoformat(),
            log_index=log_index,
            printed=printed_text,
            proof=proof,
        )

    async def _issuable_type(self, db: AsyncSession, client_id: str, type_id: str) -> CredentialType:
        kind = await db.get(CredentialType, type_id)
        if kind is None or kind.disabled_at is not None:
            raise EproofError(422, f"No credential type {type_id!r}.", "type")
        member = await self.exchange.member_of_client(db, client_id)
        if member != kind.issuer_member_id:
            raise EproofError(403, f"Only {kind.issuer_member_id} issues {type_id}.")
        return kind

    async def _status_slot(self, db: AsyncSession, member_id: str) -> tuple[str, int]:
        """The next free index in the issuer's current status list (a new list when it is full)."""
        for _ in range(3):
            taken = await db.execute(
                update(StatusList)
                .where(StatusList.issuer_member_id == member_id, StatusList.next_index < StatusList.size)
                .values(next_index=StatusList.next_index + 1)
                .returning(StatusList.id, StatusList.next_index)
            )
            row = taken.first()
            if row is not None:
                return str(row[0]), int(row[1]) - 1
            count = len(list(await db.scalars(select(StatusList.id).where(StatusList.issuer_member_id == member_id))))
            db.add(
                StatusList(
                    id=f"{member_id.rsplit('/', 1)[-1]}-{count + 1}",
                    issuer_member_id=member_id,
                    size=STATUS_LIST_SIZE,
                    next_index=0,
                    updated_at=utcnow(),
                )
            )
            await db.flush()
        raise EproofError(503, "No status list slot could be taken; try again.")

    def _sd_jwt(self, draft: Draft, holder: ECKey) -> str:
        kind = draft.kind
        content: dict[str, Any] = {
            "iss": self.issuer_url(kind.issuer_member_id),
            "iat": int(draft.issued_at.timestamp()),
            "exp": int(draft.expires_at.timestamp()),
            "vct": self.type_url(kind.id),
            "jti": draft.credential_id,
            "status": {"status_list": {"idx": draft.status_index, "uri": self.status_url(draft.status_list_id)}},
        }
        for name, value in draft.claims.items():
            content[name] = sdjwt.Disclosable(value) if name in kind.selective else value
        return sdjwt.issue_sd_jwt(content, draft.key, holder_jwk=holder.as_dict(private=False))

    def _printed(self, draft: Draft) -> str:
        private = draft.key.private_key
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        credential = printed.PrintedCredential(
            credential_id=draft.credential_id,
            issuer=draft.kind.issuer_member_id,
            type=draft.kind.id,
            claims={name: draft.claims[name] for name in draft.kind.printed if name in draft.claims},
            issued_at=int(draft.issued_at.timestamp()),
            expires_at=int(draft.expires_at.timestamp()),
            status=(draft.status_list_id, draft.status_index),
            kid=printed.key_id(private.public_key()),
        )
        return printed.encode_printed(credential, private)

    # --- status ----------------------------------------------------------------------------------------

    async def change_status(
        self, db: AsyncSession, engine: AsyncEngine, client_id: str, credential_id: str, change: StatusChange
    ) -> StatusName:
        row = await self._issuers_credential(db, client_id, credential_id)
        wanted = STATUS_BY_NAME[change.status]
        if row.status == CredentialStatus.REVOKED:
            raise EproofError(409, "The credential is revoked: a revocation is final.")
        if row.status == wanted:
            return change.status
        now = utcnow()
        event = {StatusName.REVOKED: "revoked", StatusName.SUSPENDED: "suspended", StatusName.VALID: "reinstated"}
        entry = log_entry(event[change.status], row.type_id, row.id, row.digest, printed_digest(row.printed), now)
        list_id = row.status_list_id
        await db.commit()

        async def store(session: AsyncSession, log_index: int) -> None:
            await session.execute(
                update(Credential).where(Credential.id == credential_id).values(status=wanted, updated_at=now)
            )
            await audit.record(
                session,
                f"eproof.{event[change.status]}",
                actor=f"client:{client_id}",
                subject=f"credential:{credential_id}",
                data={"reason": change.reason, "log_index": log_index},
            )

        await self.log.append(engine, entry, store)
        await self.refresh_status_list(db, list_id)
        return change.status

    async def _issuers_credential(self, db: AsyncSession, client_id: str, credential_id: str) -> Credential:
        row = await db.get(Credential, credential_id) if _is_uuid(credential_id) else None
        kind = await db.get(CredentialType, row.type_id) if row is not None else None
        member = await self.exchange.member_of_client(db, client_id)
        if row is None or kind is None or member != kind.issuer_member_id:
            raise EproofError(404, f"No credential {credential_id!r} issued by this department.")
        return row

    async def refresh_status_list(self, db: AsyncSession, list_id: str) -> str | None:
        """Sign the list again from the credentials' statuses and store it (the published copy)."""
        row = await db.get(StatusList, list_id)
        if row is None:
            return None
        bits = Bits.empty(row.size)
        changed = await db.execute(
            select(Credential.status_index, Credential.status).where(
                Credential.status_list_id == list_id, Credential.status != CredentialStatus.VALID
            )
        )
        for index, status in changed:
            bits.set(index, status)
        key = await self.issuer_key(db, row.issuer_member_id)
        token = status_list_token(
            bits, self.status_url(list_id), key, lifetime=STATUS_TOKEN_LIFETIME, ttl=STATUS_TOKEN_TTL
        )
        row.token, row.version, row.updated_at = token, row.version + 1, utcnow()
        await db.commit()
        return token

    async def status_list(self, db: AsyncSession, list_id: str) -> tuple[str, int] | None:
        """The published Status List Token and its version (re-signed when half its life has passed)."""
        row = await db.get(StatusList, list_id) if len(list_id) <= 36 else None
        if row is None:
            return None
        if row.token is None or utcnow() - row.updated_at > STATUS_TOKEN_REFRESH:
            await self.refresh_status_list(db, list_id)
            await db.refresh(row)
        assert row.token is not None
        return row.token, row.version

    # --- the resident's wallet -----------------------------------------------------------------------

    async def wallet(self, db: AsyncSession, resident_id: str) -> list[Credential]:
        query = select(Credential).where(Credential.resident_id == resident_id).order_by(Credential.issued_at.desc())
        return list(await db.scalars(query))

    async def credential_of(self, db: AsyncSession, resident_id: str, credential_id: str) -> Credential | None:
        row = await db.get(Credential, credential_id) if _is_uuid(credential_id) else None
        return row if row is not None and row.resident_id == resident_id else None

    async def proof_of(self, db: AsyncSession, credential_id: str) -> str | None:
        """A credential's tlog-proof bundle (its issuance entry), for anyone who holds its id."""
        row = await db.get(Credential, credential_id) if _is_uuid(credential_id) else None
        if row is None:
            return None
        entry = await db.scalar(select(LogEntry.entry).where(LogEntry.index == row.log_index))
        return await self.log.proof_bundle(db, row.log_index, bytes(entry)) if entry is not None else None

    # --- discovery -------------------------------------------------------------------------------------

    async def discovery(self, db: AsyncSession) -> dict[str, Any]:
        lists = list(await db.scalars(select(StatusList).order_by(StatusList.id)))
        return {
            "issuer": self.public_url,
            "log": {
                "base_url": f"{self.public_url}/eproof/log",
                "origin": self.log.origin,
                "vkey": self.log.signer.verifier.vkey,
                "checkpoint": f"{self.public_url}/eproof/log/checkpoint",
            },
            "witnesses": [{"name": w.name, "vkey": w.vkey} for w in self.witnesses()],
            "status_lists": {row.id: self.status_url(row.id) for row in lists},
            "issuers": {
                member: {"id": self.issuer_url(member), "jwks": jwks}
                for member, jwks in (await self.issuer_jwks(db)).items()
            },
            "credential_types": [
                t.model_dump(mode="json", by_alias=True) | {"vct": self.type_url(t.id)} for t in await self.types(db)
            ],
            "verification_page": f"{self.public_url}/verify",
        }

    # --- verification, as the public page does it -----------------------------------------------------

    async def trust(self, db: AsyncSession) -> Trust:
        """The platform's own trust file: its discovery document and every current status list."""
        document = await self.discovery(db)
        tokens = {}
        for list_id, uri in document["status_lists"].items():
            found = await self.status_list(db, list_id)
            if found is not None:
                tokens[uri] = found[0]
        return trust_from(document, tokens)

    async def verify(self, db: AsyncSession, text: str) -> Verdict:
        """Every check, online: a code or an SD-JWT handed over without its proof bundle is looked up in
        the log by its credential id."""
        trust = await self.trust(db)
        verdict = verify(text, trust)
        if "log" in verdict.unchecked and verdict.credential_id is not None:
            bundle = await self.proof_of(db, verdict.credential_id)
            verdict.unchecked.remove("log")
            logged = check_log_proof(verdict.credential, bundle, trust, verdict) if bundle else (False, "not_in_log")
            verdict.outcomes["log"] = logged
        return verdict

    # --- witnesses ---------------------------------------------------------------------------------

    def witnesses(self) -> list[NoteVerifier]:
        """The witnesses whose cosignatures are accepted: configured vkeys, and in demo and dev mode any
        ``<data-dir>/witness/*.vkey`` (the demo's partner makes its key on first use)."""
        vkeys = list(self.witness_vkeys)
        if self.witness_files is not None and self.witness_files.is_dir():
            vkeys += [path.read_text().strip() for path in sorted(self.witness_files.glob("*.vkey"))]
        found = []
        for vkey in dict.fromkeys(vkeys):
            try:
                found.append(NoteVerifier.from_vkey(vkey))
            except LogProofError:
                continue  # a bad vkey is a configuration error: the settings check refuses it at start
        return found

    async def accept_cosignature(self, db: AsyncSession, size: int, line: str) -> str:
        """Store a witness's cosignature of the checkpoint of ``size`` entries; the witness's name."""
        note = await db.scalar(select(Checkpoint.note).where(Checkpoint.size == size))
        if note is None:
            raise EproofError(422, f"The log has no checkpoint of {size} entries.", "size")
        line = line.removesuffix("\n")
        if not line or any(c < " " for c in line):
            # One line only: a second would be served beside the checkpoint without being checked.
            raise EproofError(422, "A cosignature is one line: '— <witness name> <base64>'.", "cosignature")
        try:
            _, signed = verify_checkpoint(note, self.log.signer.verifier)
            candidate = parse_note(signed.text + "\n" + line + "\n")  # the very text the log signed
        except LogProofError as exc:
            raise EproofError(422, f"The cosignature is malformed: {exc}", "cosignature") from exc
        for witness in self.witnesses():
            try:
                cosigned_at = verify_cosignature(candidate, witness)
            except LogProofError:
                continue
            await self._keep_newest(db, size, signed.text, witness, cosigned_at, line + "\n")
            return witness.name
        raise EproofError(
            422, "The cosignature is not by a witness this log accepts, or does not verify.", "cosignature"
        )

    async def _keep_newest(
        self, db: AsyncSession, size: int, text: str, witness: NoteVerifier, at: int, line: str
    ) -> None:
        """Replace the witness's cosignature of this checkpoint only with a newer one: anyone may submit,
        so an older line (still valid) must not be put back."""
        held = await db.scalar(
            select(Cosignature.signature_line).where(Cosignature.size == size, Cosignature.witness == witness.name)
        )
        if held is not None and at <= verify_cosignature(parse_note(f"{text}\n{held}"), witness):
            raise EproofError(
                422, "This cosignature is not newer than the one the log holds from that witness.", "cosignature"
            )
        await db.execute(delete(Cosignature).where(Cosignature.size == size, Cosignature.witness == witness.name))
        try:
            await self.log.cosign(db, size, witness.name, line)
        except IntegrityError as exc:  # the same witness's line arrived at the same moment
            await db.rollback()
            raise EproofError(409, "Another cosignature by this witness arrived at the same moment.") from exc

    async def issuer_key_set(self, db: AsyncSession, member_id: str) -> KeySet:
        jwks = (await self.issuer_jwks(db)).get(member_id)
        return public_key_set(jwks) if jwks else KeySet([])


def log_entry(event: str, type_id: str, credential_id: str, digest: str, printed_sha: str, at: datetime) -> bytes:
    """A log entry: what happened to which credential, by digests only (no claim, no holder)."""
    body = {
        "v": 1,
        "event": event,
        "type": type_id,
        "credential": credential_id,
        "sd_jwt": digest,
        "printed": printed_sha,
        "at": at.isoformat(timespec="seconds"),
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def printed_digest(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def type_view(row: CredentialType) -> RegisteredCredentialType:
    return RegisteredCredentialType.model_validate(
        {
            "id": row.id,
            "issuer": row.issuer_member_id,
            "name": row.name,
            "claims_schema": row.claims_schema,
            "claim_titles": row.claim_titles,
            "selective": row.selective,
            "printed": row.printed,
            "validity_days": row.validity_days,
            "created_at": row.created_at.isoformat(),
            "disabled": row.disabled_at is not None,
        }
    )


def eproof_service(request: Request) -> EproofService:
    service: EproofService = request.app.state.eproof
    return service


__all__ = ["NAME_BY_STATUS", "EproofError", "EproofService", "eproof_service", "log_entry"]
