"""Checking e-Proof's transparency log offline: RFC 9162 Merkle proofs, C2SP signed notes and
checkpoints, witness cosignatures (C2SP tlog-cosignature, Ed25519) and proof bundles (C2SP tlog-proof).

Everything here is a pure function of its inputs: a verifier pins the log's verifier key (``vkey``)
and the witnesses' keys it trusts, and needs nothing else. Each refusal is a ``LogProofError`` whose
message says what did not hold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HASH_SIZE = 32
TILE_HEIGHT = 8  # C2SP tlog-tiles: 256 hashes, or 256 entries, a tile
TILE_WIDTH = 1 << TILE_HEIGHT
NOTE_KEY_ED25519 = 0x01
COSIGNATURE_ED25519 = 0x04
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line
PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_NOTE_BYTES = 1_000_000
MAX_PROOF_HASHES = 64


class LogProofError(ValueError):
    """A proof, note or bundle that does not verify; the message says why."""


# --- RFC 9162 §2.1 ----------------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), or an error if it cannot be one."""
    if not 0 <= index < size:
        raise LogProofError(f"entry {index} is not in a tree of {size} entries")
    _check_hashes([leaf, *proof])
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise LogProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise LogProofError("the inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    """Raise unless ``leaf`` is entry ``index`` of the tree of ``size`` entries whose root is ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise LogProofError("the inclusion proof does not lead to the checkpoint's root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: list[bytes]) -> None:
    """Raise unless the tree of ``size2`` entries with ``root2`` extends the one of ``size1`` with ``root1``
    (RFC 9162 §2.1.4.2). An empty first tree is refused: it proves nothing about what was appended."""
    _check_hashes(proof)
    if size1 <= 0 or size2 < size1:
        raise LogProofError(f"no consistency proof exists from {size1} to {size2} entries")
    if size1 == size2:
        if proof:
            raise LogProofError("a proof between trees of the same size must be empty")
        if root1 != root2:
            raise LogProofError("two trees of the same size have different roots")
        return
    if not proof:
        raise LogProofError("the consistency proof is empty")
    path = [root1, *proof] if size1 & (size1 - 1) == 0 else list(proof)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise LogProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise LogProofError("the consistency proof is shorter than the tree is deep")
    if fr != root1:
        raise LogProofError("the consistency proof does not lead to the older checkpoint's root")
    if sr != root2:
        raise LogProofError("the consistency proof does not lead to the newer checkpoint's root")


@dataclass
class CompactRange:
    """The right edge of a tree of ``size`` leaves: the roots of its complete subtrees, largest first
    (one per 1 bit of ``size``). It is all a monitor keeps to extend the tree and recompute its root."""

    size: int = 0
    subtrees: list[bytes] = field(default_factory=list)

    def extend(self, leaf_hashes: list[bytes]) -> CompactRange:
        if any(len(h) != HASH_SIZE for h in leaf_hashes):  # any number of them: this is no proof
            raise LogProofError("a leaf hash is 32 bytes")
        for node in leaf_hashes:
            merged, size = node, self.size
            while size & 1:  # each trailing 1 bit of the size is a complete subtree the new leaf completes
                merged = node_hash(self.subtrees.pop(), merged)
                size >>= 1
            self.subtrees.append(merged)
            self.size += 1
        return self

    def root(self) -> bytes:
        """RFC 9162 §2.1.1's Merkle Tree Hash of the leaves so far."""
        if not self.subtrees:
            return hashlib.sha256(b"").digest()
        root = self.subtrees[-1]
        for subtree in reversed(self.subtrees[:-1]):
            root = node_hash(subtree, root)
        return root


def tree_root(leaf_hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1's Merkle Tree Hash of leaf hashes, in one pass."""
    return CompactRange().extend(leaf_hashes).root()


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (or ``tile/entries/…`` when level is None), N in 3-digit groups, all
    but the last prefixed with x."""
    parts = []
    while True:
        parts.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups = "/".join([f"x{p}" for p in reversed(parts[1:])] + [parts[0]])
    head = "entries" if level is None else str(level)
    partial = f".p/{width}" if width < TILE_WIDTH else ""
    return f"tile/{head}/{groups}{partial}"


def parse_entry_bundle(data: bytes, width: int) -> list[bytes]:
    """The ``width`` entries of a C2SP tlog-tiles entry bundle (each a big-endian uint16 length and
    its bytes); ``LogProofError`` if the bundle holds fewer, more, or is cut short."""
    entries, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise LogProofError("the entry bundle ends inside an entry's length")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise LogProofError("the entry bundle ends inside an entry")
        entries.append(data[offset : offset + length])
        offset += length
    if len(entries) != width:
        raise LogProofError(f"the entry bundle holds {len(entries)} entries, not {width}")
    return entries


def _check_hashes(hashes: list[bytes]) -> None:
    if len(hashes) > MAX_PROOF_HASHES + 1 or any(len(h) != HASH_SIZE for h in hashes):
        raise LogProofError("a proof is at most 64 hashes of 32 bytes (SHA-256)")


# --- C2SP signed-note and vkey ----------------------------------------------------------------------


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A signer's public key as a verifier knows it: its name, key id and Ed25519 key."""

    name: str
    public_key: bytes
    signature_type: int = NOTE_KEY_ED25519

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.signature_type, self.public_key)

    @property
    def vkey(self) -> str:
        """The C2SP verifier key string: ``<name>+<hex key id>+<base64(type || public key)>``."""
        encoded = base64.b64encode(bytes([self.signature_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.split("+", 2)
        if len(parts) != 3 or not _valid_name(parts[0]):
            raise LogProofError("a verifier key reads <name>+<key id>+<base64 key>")
        name, hex_id, encoded = parts
        raw = _b64(encoded, "the verifier key")
        if len(raw) != 33 or raw[0] not in (NOTE_KEY_ED25519, COSIGNATURE_ED25519):
            raise LogProofError("only Ed25519 verifier keys (types 0x01 and 0x04) are supported")
        verifier = cls(name, raw[1:], raw[0])
        if verifier.key_id.hex() != hex_id.lower():
            raise LogProofError("the verifier key's id does not match its name and key")
        return verifier


@dataclass(frozen=True)
class NoteSigner:
    """A note signer: a name and an Ed25519 private key (the log's, or a witness's)."""

    name: str
    private_key: Ed25519PrivateKey
    signature_type: int = NOTE_KEY_ED25519

    @property
    def verifier(self) -> NoteVerifier:
        raw = self.private_key.public_key().public_bytes_raw()
        return NoteVerifier(self.name, raw, self.signature_type)

    def signature_line(self, text: str) -> str:
        if self.signature_type != NOTE_KEY_ED25519:
            raise ValueError("a note signer's key has signature type 0x01 (a 0x04 key only cosigns)")
        signature = self.private_key.sign(text.encode())
        return _line(self.name, self.verifier.key_id + signature)

    def cosignature_line(self, text: str, timestamp: int) -> str:
        """A tlog-cosignature/v1 line over a checkpoint's text (this signer's type must be 0x04)."""
        if self.signature_type != COSIGNATURE_ED25519:
            raise ValueError("a cosigner's key has signature type 0x04")
        signature = self.private_key.sign(cosigned_message(text, timestamp))
        return _line(self.name, self.verifier.key_id + struct.pack(">Q", timestamp) + signature)


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    text: str  # every line ends with a newline
    signatures: list[SignatureLine] = field(default_factory=list)

    def __str__(self) -> str:
        lines = "".join(_line(s.name, s.key_id + s.signature) for s in self.signatures)
        return f"{self.text}\n{lines}"


def sign_note(text: str, signer: NoteSigner) -> str:
    if not text.endswith("\n") or "\n\n" in text or not text.strip():
        raise ValueError("a note's text is non-empty lines, each ending with a newline")
    if _has_control_character(text):
        raise ValueError("a note's text holds a control character other than newline")
    return f"{text}\n{signer.signature_line(text)}"


def _has_control_character(text: str) -> bool:
    # C2SP signed-note, as Go's note.Open reads it: nothing below U+0020 but the newline.
    return any(c < " " and c != "\n" for c in text)


def parse_note(note: str) -> Note:
    if len(note.encode()) > MAX_NOTE_BYTES or not note.endswith("\n"):
        raise LogProofError("a signed note ends with a newline and is at most 1 MB")
    if _has_control_character(note):
        raise LogProofError("a signed note holds a control character other than newline")
    # The signatures follow the last blank line: a text may hold blank lines, signature lines never do.
    text, separator, lines = note.rpartition("\n\n")
    if not separator or not text:
        raise LogProofError("a signed note is its text, a blank line, then its signatures")
    signatures = [_parse_signature_line(line) for line in lines.split("\n")[:-1]]
    if not signatures:
        raise LogProofError("the note has no signature")
    return Note(text + "\n", signatures)


def _parse_signature_line(line: str) -> SignatureLine:
    if not line.startswith(SIGNATURE_PREFIX):
        raise LogProofError("a signature line starts with an em dash and a space")
    name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not _valid_name(name) or " " in encoded:
        raise LogProofError("a signature line is '— <name> <base64 signature>'")
    raw = _b64(encoded, "the signature")
    if len(raw) < 5:
        raise LogProofError("a signature is a 4-byte key id and the signature itself")
    return SignatureLine(name, raw[:4], raw[4:])


def verify_note(note: str, verifier: NoteVerifier) -> Note:
    """The note, if ``verifier``'s key signed it (other signatures are kept, unchecked)."""
    if verifier.signature_type != NOTE_KEY_ED25519:
        raise LogProofError("a note signer's key has signature type 0x01; a 0x04 key only cosigns")
    parsed = parse_note(note)
    mine = [s for s in parsed.signatures if s.name == verifier.name and s.key_id == verifier.key_id]
    if not mine:
        raise LogProofError(f"the note has no signature by {verifier.name}")
    key = Ed25519PublicKey.from_public_bytes(verifier.public_key)
    for line in mine:  # a known key's failing signature is an error, wherever it stands (C2SP signed-note)
        try:
            key.verify(line.signature, parsed.text.encode())
        except InvalidSignature:
            raise LogProofError(f"the signature by {verifier.name} does not match the note") from None
    return parsed


def verify_cosignature(note: Note, witness: NoteVerifier) -> int:
    """The time the witness cosigned this checkpoint, if its tlog-cosignature/v1 verifies."""
    if witness.signature_type != COSIGNATURE_ED25519:
        raise LogProofError("a witness's key has signature type 0x04")
    mine = [s for s in note.signatures if s.name == witness.name and s.key_id == witness.key_id]
    if not mine:
        raise LogProofError(f"the checkpoint has no cosignature by {witness.name}")
    raw = mine[0].signature
    if len(raw) != 8 + 64:
        raise LogProofError("a cosignature is a timestamp and an Ed25519 signature")
    (timestamp,) = struct.unpack(">Q", raw[:8])
    if timestamp >= 2**63:
        raise LogProofError("the cosignature's time is out of range")
    try:
        Ed25519PublicKey.from_public_bytes(witness.public_key).verify(raw[8:], cosigned_message(note.text, timestamp))
    except InvalidSignature:
        raise LogProofError(f"the cosignature by {witness.name} does not match the checkpoint") from None
    return int(timestamp)


def _line(name: str, raw: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(raw).decode()}\n"


def is_decimal(text: str) -> bool:
    """A plain ASCII decimal of at most 19 digits (fits a uint63), with no sign or leading zero."""
    return (
        text.isascii()
        and text.isdigit()
        and 0 < len(text) <= 19
        and (text == "0" or not text.startswith("0"))
        and int(text) < 2**63
    )


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise LogProofError(f"{what} is not valid base64") from None


# --- C2SP tlog-checkpoint -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or not lines[0]:
        raise LogProofError("a checkpoint is its origin, its size and its root hash, one per line")
    origin, size_text, root_text, *extensions = lines
    if not is_decimal(size_text):
        raise LogProofError("the checkpoint's size is not a decimal number")
    if not all(line.strip() for line in extensions):
        raise LogProofError("a checkpoint's extension line is never empty")
    root = _b64(root_text, "the checkpoint's root hash")
    if len(root) != HASH_SIZE:
        raise LogProofError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def verify_checkpoint(note: str, log: NoteVerifier, origin: str | None = None) -> tuple[Checkpoint, Note]:
    """The checkpoint, if the log's key signed it and it names the expected origin (the log's key name)."""
    parsed = verify_note(note, log)
    checkpoint = parse_checkpoint(parsed.text)
    if checkpoint.origin != (origin or log.name):
        raise LogProofError(f"the checkpoint is from {checkpoint.origin!r}, not the log expected")
    return checkpoint, parsed


# --- C2SP tlog-proof ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofBundle:
    index: int
    proof: list[bytes]
    checkpoint_note: str
    extra: bytes | None = None

    def __str__(self) -> str:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {base64.b64encode(self.extra).decode()}")
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.proof)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note


def parse_proof_bundle(text: str) -> ProofBundle:
    head, separator, note = text.partition("\n\n")
    lines = head.split("\n")
    if not separator or lines[0] != PROOF_HEADER:
        raise LogProofError(f"a proof bundle starts with {PROOF_HEADER} and ends with its checkpoint")
    extra = None
    rest = lines[1:]
    if rest and rest[0].startswith("extra "):
        extra = _b64(rest[0][6:], "the bundle's extra data")
        rest = rest[1:]
    if not rest or not rest[0].startswith("index ") or not is_decimal(rest[0][6:]):
        raise LogProofError("the proof bundle names no entry index")
    proof = [_b64(line, "an inclusion proof hash") for line in rest[1:]]
    return ProofBundle(int(rest[0][6:]), proof, note, extra)


def verify_proof_bundle(
    text: str, entry: bytes, log: NoteVerifier, witnesses: list[NoteVerifier] | None = None, quorum: int = 0
) -> tuple[Checkpoint, dict[str, int]]:
    """Verify offline that ``entry`` is in the log: the checkpoint's signature by the log, the inclusion
    proof to its root, and at least ``quorum`` of the witnesses' cosignatures (name → time cosigned)."""
    bundle = parse_proof_bundle(text)
    checkpoint, note = verify_checkpoint(bundle.checkpoint_note, log)
    verify_inclusion(bundle.index, checkpoint.size, leaf_hash(entry), bundle.proof, checkpoint.root)
    cosigned = {}
    for witness in witnesses or []:
        try:
            cosigned[witness.name] = verify_cosignature(note, witness)
        except LogProofError:
            continue
    if len(cosigned) < quorum:
        raise LogProofError(f"{len(cosigned)} of the trusted witnesses cosigned the checkpoint; {quorum} needed")
    return checkpoint, cosigned
