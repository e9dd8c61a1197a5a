"""The transparency log's primitives against other implementations and against tampering, beside
test_transparency_log.py (which runs every transparency-dev/merkle vector):

- notes, checkpoints and cosignatures made by other implementations verify with ours, and ours are
  byte for byte what Go's signed-note package makes;
- proofs read from tiles, for any two tree sizes (not only the sizes a checkpoint was signed at), equal
  a plain RFC 9162 reference and verify;
- every bit of a proof, a signature, a cosignature or a checkpoint, flipped, is refused;
- C2SP signed-note's key rules: unknown keys and keys sharing only a name or only an id are ignored, a
  known key whose signature fails is refused.

The vectors' subtreeinclusion/ and subtreeconsistency/ folders are not run: they prove subtrees
[start, end) that do not start at 0 (Merkle Tree Certificates, ML-DSA subtree cosignatures), which the
log neither serves nor verifies.
"""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bauhinia.eproof.tiles import (
    TilePathError,
    TreeReader,
    append_leaves,
    edge_tiles,
    parse_tile_path,
    tile_path,
)
from bauhinia.sdk.transparency import (
    COSIGNATURE_ED25519,
    PROOF_HEADER,
    Checkpoint,
    LogProofError,
    NoteSigner,
    NoteVerifier,
    ProofBundle,
    leaf_hash,
    parse_checkpoint,
    parse_entry_bundle,
    parse_note,
    parse_proof_bundle,
    sign_note,
    tree_root,
    verify_checkpoint,
    verify_consistency,
    verify_cosignature,
    verify_inclusion,
    verify_note,
    verify_proof_bundle,
)

# --- what other implementations produced ----------------------------------------------------------------

# golang.org/x/mod/sumdb/note's documented example: its signer key, text and signed note.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIGNATURE = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="

# c2sp.org/signed-note's example key and signature.
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n— example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# A checkpoint of a staging Certificate Transparency log (Sunlight), with the log's RFC 6962 signature
# (type 0x05, same name, another key id) before its Ed25519 one, and four witnesses' cosignature/v1.
CT_LOG_VKEY = "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"
CT_WITNESS_VKEYS = [
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
    "witness1.smartit.nu/witness1+a48c820f+BPSFWg9G6KPiO7QPryYO5Xq4oYJJ+kAvLKLSimDhoxMO",
    "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
    "transparency.dev/DEV:witness-little-garden+d8042a87+BCtusOxINQNUTN5Oj8HObRkh2yHf/MwYaGX4CPdiVEPM",
]
CT_CHECKPOINT = """arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

— arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
— arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
— witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
— witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
"""  # noqa: E501


def test_our_signed_note_is_byte_for_byte_gos() -> None:
    seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])[1:]  # after the type byte 0x01
    signer = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))
    assert signer.verifier.vkey == GO_VKEY
    assert sign_note(GO_TEXT, signer) == f"{GO_TEXT}\n— PeterNeumann {GO_SIGNATURE}\n"


def test_notes_signed_elsewhere_verify_and_altered_ones_do_not() -> None:
    go_note = f"{GO_TEXT}\n— PeterNeumann {GO_SIGNATURE}\n"
    assert verify_note(go_note, NoteVerifier.from_vkey(GO_VKEY)).text == GO_TEXT
    assert verify_note(C2SP_NOTE, NoteVerifier.from_vkey(C2SP_VKEY)).text == "This is an example message.\n"
    with pytest.raises(LogProofError, match="does not match"):
        verify_note(go_note.replace("cryptography", "cryptographY"), NoteVerifier.from_vkey(GO_VKEY))


def test_a_real_log_checkpoint_and_its_witnesses_cosignatures_verify() -> None:
    checkpoint, note = verify_checkpoint(CT_CHECKPOINT, NoteVerifier.from_vkey(CT_LOG_VKEY))
    assert (checkpoint.origin, checkpoint.size) == ("arche2025h1.staging.ct.transparency.dev", 1432088532)
    times = {verify_cosignature(note, NoteVerifier.from_vkey(vkey)) for vkey in CT_WITNESS_VKEYS}
    assert times == {1779573024}
    with pytest.raises(LogProofError, match="does not match"):
        verify_checkpoint(CT_CHECKPOINT.replace("1432088532", "1432088533"), NoteVerifier.from_vkey(CT_LOG_VKEY))


# --- RFC 9162 §2.1, written out plainly ------------------------------------------------------------------


class Reference:
    """MTH, PATH and PROOF of RFC 9162 §2.1 over a list of entries, memoised on (start, end) so that
    thousands of proofs stay cheap; it shares no code with what it checks."""

    def __init__(self, entries: list[bytes]) -> None:
        self.leaves = [hashlib.sha256(b"\x00" + e).digest() for e in entries]
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, start: int, end: int) -> bytes:
        if end - start == 1:
            return self.leaves[start]
        if (start, end) not in self._mth:
            k = _split(end - start)
            self._mth[(start, end)] = hashlib.sha256(
                b"\x01" + self.mth(start, start + k) + self.mth(start + k, end)
            ).digest()
        return self._mth[(start, end)]

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        k = _split(end - start)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        if m == end - start:
            return [] if whole else [self.mth(start, end)]
        k = _split(end - start)
        if m <= k:
            return [*self.subproof(m, start, start + k, whole), self.mth(start + k, end)]
        return [*self.subproof(m - k, start + k, end, False), self.mth(start, start + k)]


def _split(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class TiledTree:
    """A tree grown by append_leaves in the given batches, its tiles kept as a SQL table would."""

    def __init__(self, batches: list[int], seed: int = 0) -> None:
        rng = random.Random(seed)
        # distinct entries: two equal sibling leaves would make a proof hold at either index
        self.entries = [i.to_bytes(4, "big") + rng.randbytes(rng.randrange(0, 48)) for i in range(sum(batches))]
        self.reference = Reference(self.entries)
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.checkpoints: list[int] = []
        size, edges = 0, dict[int, bytes]()
        for count in batches:
            appended = append_leaves(size, edges, [leaf_hash(e) for e in self.entries[size : size + count]])
            assert appended.root == self.reference.mth(0, appended.size)
            size, edges = appended.size, appended.edges
            self.tiles.update(appended.tiles)
            self.checkpoints.append(size)
        self.size = size

    def reader(self) -> TreeReader:
        async def read(level: int, index: int) -> bytes:
            return self.tiles[(level, index)]

        return TreeReader(read)

    def root(self, size: int) -> bytes:
        return self.reference.mth(0, size)


async def _check_inclusion(tree: TiledTree, reader: TreeReader, index: int, size: int) -> None:
    proof = await reader.inclusion_proof(index, size)
    assert proof == tree.reference.path(index, 0, size)
    verify_inclusion(index, size, leaf_hash(tree.entries[index]), proof, tree.root(size))


async def _check_consistency(tree: TiledTree, reader: TreeReader, first: int, second: int) -> None:
    proof = await reader.consistency_proof(first, second)
    assert proof == tree.reference.subproof(first, 0, second, True)
    verify_consistency(first, second, tree.root(first), tree.root(second), proof)


async def test_every_proof_of_every_small_tree_matches_rfc_9162() -> None:
    tree = TiledTree([1] * 40 + [3, 7, 10])  # a checkpoint after each of the first 40 entries
    reader = tree.reader()
    for size in range(1, tree.size + 1):
        assert await reader.root(size) == tree.root(size)
        for index in range(size):
            await _check_inclusion(tree, reader, index, size)
            await _check_consistency(tree, reader, index + 1, size)


async def test_proofs_across_tile_edges_match_rfc_9162() -> None:
    tree = TiledTree([255, 1, 1, 254, 1, 512, 300, 65_536 - 1324, 2, 100])
    reader = tree.reader()
    edges = [1, 2, 127, 128, 129, 255, 256, 257, 511, 512, 513, 768, 1024, 65_535, 65_536, 65_537, tree.size]
    for size in edges:
        assert await reader.root(size) == tree.root(size)
        for index in {0, size // 2, size - 1, min(255, size - 1), min(256, size - 1)}:
            await _check_inclusion(tree, reader, index, size)
        for first in edges:
            if first <= size:
                await _check_consistency(tree, reader, first, size)


async def test_every_size_to_600_and_a_few_thousands_matches_rfc_9162() -> None:
    tree = TiledTree([1] * 600 + [400, 1000, 2000, 100])  # a checkpoint at every size up to 600
    reader = tree.reader()
    for size in [*range(1, 601), 1000, 2000, 4000, 4100]:
        assert await reader.root(size) == tree.root(size)
        for index in {0, size // 3, size - 1}:
            await _check_inclusion(tree, reader, index, size)
        for first in {1, size // 2 or 1, size - 1 or 1, size}:
            await _check_consistency(tree, reader, first, size)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 700), min_size=1, max_size=6), st.data())
async def test_any_two_sizes_of_a_tree_we_build_are_consistent(batches: list[int], data: st.DataObject) -> None:
    tree = TiledTree(batches, seed=len(batches))
    second = data.draw(st.integers(1, tree.size), label="second")
    first = data.draw(st.integers(1, second), label="first")
    index = data.draw(st.integers(0, first - 1), label="index")
    reader = tree.reader()
    await _check_consistency(tree, reader, first, second)
    await _check_inclusion(tree, reader, index, first)
    await _check_inclusion(tree, reader, index, second)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=2, max_size=5), st.data())
async def test_checkpoints_we_sign_verify_and_are_consistent(batches: list[int], data: st.DataObject) -> None:
    tree, signer = TiledTree(batches, seed=3), NoteSigner("log.example/any", Ed25519PrivateKey.generate())
    notes = [sign_note(Checkpoint(signer.name, size, tree.root(size)).text, signer) for size in tree.checkpoints]
    older = data.draw(st.integers(0, len(notes) - 1))
    newer = data.draw(st.integers(older, len(notes) - 1))
    verifier = NoteVerifier.from_vkey(signer.verifier.vkey)
    old, _ = verify_checkpoint(notes[older], verifier)
    new, _ = verify_checkpoint(notes[newer], verifier)
    verify_consistency(
        old.size, new.size, old.root, new.root, await tree.reader().consistency_proof(old.size, new.size)
    )


# --- a flipped bit ----------------------------------------------------------------------------------------


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with one bit inverted (bit 0 is the top bit of the first byte)."""
    changed = bytearray(data)
    changed[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(changed)


def signature_bytes(line: str) -> tuple[str, bytes]:
    """A signature line's '— name ' and its decoded key id and signature."""
    head, _, encoded = line.rstrip("\n").rpartition(" ")
    return head + " ", base64.b64decode(encoded)


SHARED_TREE = TiledTree([300, 1, 212, 900], seed=9)


@settings(max_examples=120, deadline=None)
@given(st.data())
async def test_a_flipped_bit_in_a_consistency_proof_or_root_is_refused(data: st.DataObject) -> None:
    tree = SHARED_TREE
    second = data.draw(st.integers(2, tree.size))
    first = data.draw(st.integers(1, second - 1))
    proof = await tree.reader().consistency_proof(first, second)
    roots = [tree.root(first), tree.root(second)]
    target = data.draw(st.integers(0, len(proof) + 1))  # a proof hash, or one of the two roots
    bit = data.draw(st.integers(0, 255))
    if target < len(proof):
        proof[target] = flip(proof[target], bit)
    else:
        roots[target - len(proof)] = flip(roots[target - len(proof)], bit)
    with pytest.raises(LogProofError):
        verify_consistency(first, second, roots[0], roots[1], proof)


@pytest.fixture(scope="module")
def log_key() -> NoteSigner:
    return NoteSigner("eproof.example/log", Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def witness_key() -> NoteSigner:
    return NoteSigner("partner.example/witness", Ed25519PrivateKey.generate(), COSIGNATURE_ED25519)


@settings(max_examples=150, deadline=None)
@given(bit=st.integers(0, (4 + 64) * 8 - 1))
def test_a_flipped_bit_in_the_logs_signature_is_refused(log_key: NoteSigner, bit: int) -> None:
    text = Checkpoint(log_key.name, 42, bytes(range(32))).text
    head, raw = signature_bytes(log_key.signature_line(text))
    forged = f"{text}\n{head}{base64.b64encode(flip(raw, bit)).decode()}\n"
    reason = "no signature by" if bit < 32 else "does not match"  # the key id, or the signature itself
    with pytest.raises(LogProofError, match=reason):
        verify_checkpoint(forged, log_key.verifier)


@settings(max_examples=150, deadline=None)
@given(bit=st.integers(0, (4 + 8 + 64) * 8 - 1))
def test_a_flipped_bit_in_a_cosignature_is_refused(log_key: NoteSigner, witness_key: NoteSigner, bit: int) -> None:
    text = Checkpoint(log_key.name, 42, bytes(range(32))).text
    head, raw = signature_bytes(witness_key.cosignature_line(text, 1_790_000_000))
    note = sign_note(text, log_key) + f"{head}{base64.b64encode(flip(raw, bit)).decode()}\n"
    with pytest.raises(LogProofError):
        verify_cosignature(verify_note(note, log_key.verifier), witness_key.verifier)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_a_flipped_bit_in_a_signed_checkpoint_is_refused(log_key: NoteSigner, data: st.DataObject) -> None:
    text = Checkpoint(log_key.name, 1_234_567, hashlib.sha256(b"root").digest()).text
    position = data.draw(st.integers(0, len(text) - 2))  # any character but the final newline
    changed = chr(ord(text[position]) ^ (1 << data.draw(st.integers(0, 6))))  # stays ASCII
    forged = text[:position] + changed + text[position + 1 :] + "\n" + log_key.signature_line(text)
    with pytest.raises(LogProofError):
        verify_checkpoint(forged, log_key.verifier)


@settings(max_examples=150, deadline=None)
@given(st.data())
async def test_a_flipped_bit_in_a_proof_bundle_is_refused(log_key: NoteSigner, data: st.DataObject) -> None:
    tree = SHARED_TREE
    index = data.draw(st.integers(0, tree.size - 1))
    note = sign_note(Checkpoint(log_key.name, tree.size, tree.root(tree.size)).text, log_key)
    proof = await tree.reader().inclusion_proof(index, tree.size)
    claimed = index
    which = data.draw(st.integers(0, len(proof)))  # a proof hash, or the index itself
    if which < len(proof):
        proof[which] = flip(proof[which], data.draw(st.integers(0, 255)))
    else:
        claimed ^= 1 << data.draw(st.integers(0, tree.size.bit_length()))
    bundle = str(ProofBundle(claimed, proof, note))
    with pytest.raises(LogProofError):
        verify_proof_bundle(bundle, tree.entries[index], log_key.verifier)


# --- what a note, a checkpoint and a bundle may hold ------------------------------------------------------


def test_the_signatures_start_after_the_last_blank_line() -> None:
    """C2SP signed-note (and Go's note.Open): a text may hold a blank line; the signature block
    follows the last one."""
    text = "first paragraph\n\nsecond paragraph\n"
    signer = NoteSigner("example.org/notes", Ed25519PrivateKey.generate())
    note = f"{text}\n{signer.signature_line(text)}"
    assert verify_note(note, signer.verifier).text == text


@pytest.mark.parametrize("control", ["\r", "\x00", "\t", "\x1b"])
def test_control_characters_in_a_note_are_refused(log_key: NoteSigner, control: str) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text.replace("\n7\n", f"\n7{control}\n")
    note = f"{text}\n{log_key.signature_line(text)}"
    with pytest.raises(LogProofError, match="control character"):
        verify_note(note, log_key.verifier)
    with pytest.raises(ValueError, match="control character"):
        sign_note(text, log_key)


def test_a_checkpoint_with_an_empty_extension_line_is_refused(log_key: NoteSigner) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text + "extension\n" + " \n"
    with pytest.raises(LogProofError, match="extension line"):
        parse_checkpoint(text)
    assert parse_checkpoint(Checkpoint(log_key.name, 7, bytes(32), ("ext one",)).text).extensions == ("ext one",)


@pytest.mark.parametrize(
    "size", ["\u00b2", "\u0661\u0662", "07", "+7", " 7", "7 ", "-1", "", "1" * 20, str(2**63), "9" * 19]
)
def test_a_checkpoint_size_is_plain_ascii_decimal(log_key: NoteSigner, size: str) -> None:
    text = f"{log_key.name}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n"
    with pytest.raises(LogProofError, match="size is not a decimal number"):
        parse_checkpoint(text)


@pytest.mark.parametrize("index", ["\u00b2", "\u0661\u0662", "07", "+7", "-1", "", "1" * 20])
def test_a_bundle_index_is_plain_ascii_decimal(log_key: NoteSigner, index: str) -> None:
    note = sign_note(Checkpoint(log_key.name, 20, bytes(32)).text, log_key)
    with pytest.raises(LogProofError, match="no entry index"):
        parse_proof_bundle(f"{PROOF_HEADER}\nindex {index}\n\n{note}")
    assert parse_proof_bundle(f"{PROOF_HEADER}\nindex 0\n\n{note}").index == 0


def test_a_witness_key_does_not_sign_notes(log_key: NoteSigner, witness_key: NoteSigner) -> None:
    """A 0x04 key signs only cosignatures: a plain Ed25519 signature under its key id is no note signature."""
    text = Checkpoint(log_key.name, 7, bytes(32)).text
    with pytest.raises(ValueError, match="0x01"):
        witness_key.signature_line(text)
    raw = witness_key.private_key.sign(text.encode())
    forged = f"{text}\n— {witness_key.name} {base64.b64encode(witness_key.verifier.key_id + raw).decode()}\n"
    with pytest.raises(LogProofError, match="0x01"):
        verify_note(forged, witness_key.verifier)


def test_every_signature_line_by_the_known_key_must_verify(log_key: NoteSigner) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text
    _, raw = signature_bytes(log_key.signature_line(text))
    bad = f"— {log_key.name} {base64.b64encode(raw[:4] + bytes(64)).decode()}\n"
    for note in (f"{text}\n{log_key.signature_line(text)}{bad}", f"{text}\n{bad}{log_key.signature_line(text)}"):
        with pytest.raises(LogProofError, match="does not match"):
            verify_note(note, log_key.verifier)


# --- what a monitor reads ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=0, max_size=300))
def test_the_one_pass_tree_root_is_rfc_9162s(entries: list[bytes]) -> None:
    expected = Reference(entries).mth(0, len(entries)) if entries else hashlib.sha256(b"").digest()
    assert tree_root([leaf_hash(e) for e in entries]) == expected


def test_a_tree_of_a_thousand_leaves_in_one_call() -> None:
    entries = [i.to_bytes(4, "big") for i in range(1000)]
    assert tree_root([leaf_hash(e) for e in entries]) == Reference(entries).mth(0, 1000)


def test_an_entry_bundle_reads_back_or_is_refused() -> None:
    entries = [b"", b"a", bytes(300), b"\xff" * 65535]
    bundle = b"".join(len(e).to_bytes(2, "big") + e for e in entries)
    assert parse_entry_bundle(bundle, 4) == entries
    for damaged, why in (
        (bundle[:-1], "ends inside an entry"),
        (bundle + b"\x00", "ends inside an entry's length"),
        (bundle + b"\x00\x00", "holds 5 entries, not 4"),
        (bundle[: 2 + 0 + 2 + 1], "holds 2 entries, not 4"),
    ):
        with pytest.raises(LogProofError, match=why):
            parse_entry_bundle(damaged, 4)


# --- whose signature counts (C2SP signed-note) ------------------------------------------------------------


def test_a_note_from_an_unknown_key_name_is_refused(log_key: NoteSigner) -> None:
    stranger = NoteSigner("someone-else.example/log", Ed25519PrivateKey.generate())
    note = sign_note(Checkpoint(stranger.name, 1, bytes(32)).text, stranger)
    with pytest.raises(LogProofError, match=f"no signature by {log_key.name}"):
        verify_checkpoint(note, log_key.verifier)


def test_signatures_sharing_only_a_name_or_only_a_key_id_are_ignored(log_key: NoteSigner) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text
    same_name = NoteSigner(log_key.name, Ed25519PrivateKey.generate())  # another key: another key id
    _, raw = signature_bytes(log_key.signature_line(text))
    same_id = f"— other.example/log {base64.b64encode(raw[:4] + bytes(64)).decode()}\n"
    note = f"{text}\n{same_name.signature_line(text)}{same_id}{log_key.signature_line(text)}"
    checkpoint, parsed = verify_checkpoint(note, log_key.verifier)
    assert checkpoint.size == 7
    assert len(parsed.signatures) == 3


def test_a_failing_signature_by_the_known_key_is_refused(log_key: NoteSigner) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text
    _, raw = signature_bytes(log_key.signature_line(text))
    note = f"{text}\n— {log_key.name} {base64.b64encode(raw[:4] + bytes(64)).decode()}\n"
    with pytest.raises(LogProofError, match="does not match"):
        verify_checkpoint(note, log_key.verifier)


def test_sixteen_signatures_are_accepted(log_key: NoteSigner) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text
    others = "".join(NoteSigner(f"w{i}.example", Ed25519PrivateKey.generate()).signature_line(text) for i in range(15))
    verify_checkpoint(f"{text}\n{others}{log_key.signature_line(text)}", log_key.verifier)


def test_a_cosignature_is_not_a_log_signature_nor_the_other_way_round(
    log_key: NoteSigner, witness_key: NoteSigner
) -> None:
    text = Checkpoint(log_key.name, 7, bytes(32)).text
    cosigned_only = f"{text}\n{witness_key.cosignature_line(text, 1_790_000_000)}"
    with pytest.raises(LogProofError):
        verify_note(cosigned_only, witness_key.verifier)
    with pytest.raises(LogProofError, match="type 0x04"):
        verify_cosignature(parse_note(sign_note(text, log_key)), log_key.verifier)
    same_key = NoteSigner(witness_key.name, witness_key.private_key)  # type 0x01: another key id
    assert same_key.verifier.key_id != witness_key.verifier.key_id


def test_vkeys_round_trip_for_both_signature_types(log_key: NoteSigner, witness_key: NoteSigner) -> None:
    for verifier in (log_key.verifier, witness_key.verifier):
        assert NoteVerifier.from_vkey(verifier.vkey) == verifier


# --- tile paths -------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(r"\Atile/(entries|[0-9]{1,2})/(x[0-9]{3}/){0,3}[0-9]{1,4}(\.p/[0-9]{1,4})?\Z"),
    )
)
def test_a_tile_path_is_refused_or_canonical(path: str) -> None:
    try:
        level, index, width = parse_tile_path(path)
    except TilePathError:
        return
    assert tile_path(level, index, width) == path


def test_tile_paths_of_the_spec_examples() -> None:
    assert tile_path(0, 1_234_067) == "tile/0/x001/x234/067"
    assert parse_tile_path("tile/entries/x001/x234/067.p/8") == (None, 1_234_067, 8)
    assert parse_tile_path("tile/2/000.p/1") == (2, 0, 1)
    partial = [tile_path(level, index, width) for level, index, width in edge_tiles(70_000)]
    assert partial == ["tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"]  # the spec's tree of 70,000
