"""The demo's "cross-boundary partner" witness: an independent party that watches the e-Proof log over
HTTP, checks that every checkpoint it sees extends the last one it cosigned (a consistency proof), and
cosigns it (C2SP tlog-cosignature/v1, Ed25519). It uses only public endpoints and the SDK.

Its key lives in ``<data-dir>/witness/partner.json`` (made on first use) and its verifier key in
``partner.vkey`` beside it, which the platform trusts in demo and dev mode. The last checkpoint it
cosigned is kept in ``partner-state.json``: a log that forks or rolls back is refused, never cosigned.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bauhinia.sdk.transparency import (
    COSIGNATURE_ED25519,
    LogProofError,
    NoteSigner,
    NoteVerifier,
    verify_checkpoint,
    verify_consistency,
)

WITNESS_NAME = "partner.example.org/witness"


class WitnessRefusal(Exception):
    """The witness would not cosign: the log's answer did not check out."""


class PartnerWitness:
    def __init__(self, data_dir: Path, platform: str, http: httpx.AsyncClient) -> None:
        self.directory = Path(data_dir) / "witness"
        self.platform = platform.rstrip("/")
        self.http = http
        self.signer = self._key()

    def _key(self) -> NoteSigner:
        path = self.directory / "partner.json"
        if path.is_file():
            raw = base64.b64decode(json.loads(path.read_text())["ed25519_private_key"])
            key = Ed25519PrivateKey.from_private_bytes(raw)
        else:
            key = Ed25519PrivateKey.generate()
            self.directory.mkdir(parents=True, exist_ok=True)
            encoded = base64.b64encode(key.private_bytes_raw()).decode()
            path.write_text(json.dumps({"name": WITNESS_NAME, "ed25519_private_key": encoded}))
            path.chmod(0o600)
        signer = NoteSigner(WITNESS_NAME, key, COSIGNATURE_ED25519)
        (self.directory / "partner.vkey").write_text(signer.verifier.vkey + "\n")
        return signer

    async def cosign_latest(self) -> int | None:
        """Cosign the log's latest checkpoint if it extends the last one cosigned; its size, or None."""
        discovery = (await self.http.get(f"{self.platform}/.well-known/bauhinia-eproof")).raise_for_status().json()
        log = NoteVerifier.from_vkey(discovery["log"]["vkey"])
        answer = await self.http.get(discovery["log"]["checkpoint"])
        if answer.status_code == 404:
            return None  # an empty log: nothing to cosign yet
        try:
            checkpoint, note = verify_checkpoint(answer.raise_for_status().text, log)
        except LogProofError as exc:
            raise WitnessRefusal(f"the checkpoint does not verify: {exc}") from exc
        last = self._last()
        if last is not None:
            await self._check_extends(discovery["log"]["base_url"], last, checkpoint.size, checkpoint.root)
        line = self.signer.cosignature_line(note.text, int(time.time()))
        sent = await self.http.post(
            f"{discovery['log']['base_url']}/cosignatures", json={"size": checkpoint.size, "cosignature": line}
        )
        sent.raise_for_status()
        self._remember(checkpoint.size, checkpoint.root)
        return checkpoint.size

    async def _check_extends(self, base_url: str, last: tuple[int, bytes], size: int, root: bytes) -> None:
        if size < last[0]:
            raise WitnessRefusal(f"the log shrank from {last[0]} to {size} entries")
        if size == last[0]:
            if root != last[1]:
                raise WitnessRefusal("the log shows two different trees of the same size (a fork)")
            return
        answer = await self.http.get(f"{base_url}/consistency", params={"from": last[0], "to": size})
        proof = [base64.b64decode(h) for h in answer.raise_for_status().json()["proof"]]
        try:
            verify_consistency(last[0], size, last[1], root, proof)
        except LogProofError as exc:
            raise WitnessRefusal(f"the new checkpoint does not extend the last one: {exc}") from exc

    def _last(self) -> tuple[int, bytes] | None:
        path = self.directory / "partner-state.json"
        if not path.is_file():
            return None
        state = json.loads(path.read_text())
        return int(state["size"]), base64.b64decode(state["root"])

    def _remember(self, size: int, root: bytes) -> None:
        state = {"size": size, "root": base64.b64encode(root).decode()}
        (self.directory / "partner-state.json").write_text(json.dumps(state))
