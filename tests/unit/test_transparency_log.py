"""The transparency log's primitives: RFC 9162 proofs (the verifier we ship, sdk.transparency, and the
proofs we generate from tlog-tiles, eproof.tiles) against transparency-dev/merkle's test vectors, signed
notes, checkpoints, witness cosignatures and proof bundles."""

from __future__ import annotations

import base64
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from bauhinia.eproof.tiles import (
    TILE_WIDTH,
    TilePathError,
    TreeReader,
    append_leaves,
    edge_tiles,
    parse_tile_path,
    tile_path,
)
from bauhinia.sdk.transparency import (
    COSIGNATURE_ED25519,
    Checkpoint,
    LogProofError,
    NoteSigner,
    NoteVerifier,
    ProofBundle,
    leaf_hash,
    node_hash,
    parse_note,
    sign_note,
    verify_checkpoint,
    verify_consistency,
    verify_cosignature,
    verify_inclusion,
    verify_note,
    verify_proof_bundle,
)

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "merkle"
# The tree the vectors are built on (RFC 6962's test data, as transparency-dev/merkle uses it).
VECTOR_LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657"]] + [
    bytes.fromhex("606162636465666768696a6b6c6d6e6f")
]


def cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = sorted((VECTORS / kind).rglob("*.json"))
    assert found, f"no vectors in {VECTORS / kind}"
    return [(str(p.relative_to(VECTORS / kind)), json.loads(p.read_text())) for p in found]


def b64(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def one(value: str | None) -> bytes:
    return base64.b64decode(value or "")


@pytest.mark.parametrize(("name", "case"), cases("inclusion"), ids=lambda v: v if isinstance(v, str) else "")
def test_inclusion_vectors(name: str, case: dict[str, Any]) -> None:
    def check() -> None:
        verify_inclusion(
            case["leafIdx"], case["treeSize"], one(case["leafHash"]), b64(case["proof"]), one(case["root"])
        )

    if case["wantErr"]:
        with pytest.raises(LogProofError):
            check()
    else:
        check()


@pytest.mark.parametrize(("name", "case"), cases("consistency"), ids=lambda v: v if isinstance(v, str) else "")
def test_consistency_vectors(name: str, case: dict[str, Any]) -> None:
    def check() -> None:
        verify_consistency(case["size1"], case["size2"], one(case["root1"]), one(case["root2"]), b64(case["proof"]))

    if case["wantErr"]:
        with pytest.raises(LogProofError):
            check()
    else:
        check()


# --- what we generate ---------------------------------------------------------------------------------


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, written out plainly."""
    if not leaves:
        import hashlib

        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*reference_path(m, leaves[:k]), reference_root(leaves[k:])]
    return [*reference_path(m - k, leaves[k:]), reference_root(leaves[:k])]


def reference_subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [reference_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], whole), reference_root(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), reference_root(leaves[:k])]


class Log:
    """A tree built through append_leaves in batches, its tiles in a dict."""

    def __init__(self) -> None:
        self.size = 0
        self.edges: dict[int, bytes] = {}
        self.tiles: dict[tuple[int, int], bytes] = {}
        self.roots: dict[int, bytes] = {0: reference_root([])}

    def append(self, entries: list[bytes]) -> bytes:
        appended = append_leaves(self.size, self.edges, [leaf_hash(e) for e in entries])
        self.size, self.edges = appended.size, appended.edges
        self.tiles.update(appended.tiles)
        self.roots[self.size] = appended.root
        return appended.root

    def reader(self) -> TreeReader:
        async def read(level: int, index: int) -> bytes:
            return self.tiles[(level, index)]

        return TreeReader(read)


def entries(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


async def test_the_vectors_tree_gives_the_vectors_proofs() -> None:
    log = Log()
    log.append(VECTOR_LEAVES)
    reader = log.reader()
    compared = 0
    for name, case in cases("inclusion"):
        if name.endswith("happy-path.json") and case["treeSize"] <= 8:
            assert await reader.root(case["treeSize"]) == one(case["root"])
            assert await reader.inclusion_proof(case["leafIdx"], case["treeSize"]) == b64(case["proof"])
            compared += 1
    for name, case in cases("consistency"):
        if name.endswith("happy-path.json") and 0 < case["size1"] < case["size2"] <= 8:
            assert await reader.consistency_proof(case["size1"], case["size2"]) == b64(case["proof"])
            compared += 1
    assert compared >= 8


@pytest.mark.parametrize("batches", [[1] * 20, [255, 1, 1], [256, 256], [1000], [70_000], [3, 700, 65_000, 900]])
async def test_roots_and_proofs_from_tiles_match_rfc_9162(batches: list[int]) -> None:
    log, data = Log(), entries(sum(batches))
    done = 0
    for size in batches:
        root = log.append(data[done : done + size])
        done += size
        if done <= 3000:
            assert root == reference_root(data[:done])
    reader = log.reader()
    rng = random.Random(sum(batches))
    for size in sorted(log.roots)[1:]:
        assert await reader.root(size) == log.roots[size]
        for index in {0, size - 1, rng.randrange(size)}:
            proof = await reader.inclusion_proof(index, size)
            verify_inclusion(index, size, leaf_hash(data[index]), proof, log.roots[size])
            if size <= 3000:
                assert proof == reference_path(index, data[:size])
    sizes = sorted(log.roots)[1:]
    for first, second in itertools.pairwise(sizes):
        proof = await reader.consistency_proof(first, second)
        verify_consistency(first, second, log.roots[first], log.roots[second], proof)
        if second <= 3000:
            assert proof == reference_subproof(first, data[:second], True)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 600), min_size=2, max_size=6), st.data())
async def test_any_two_checkpoints_we_sign_are_consistent(batches: list[int], data: st.DataObject) -> None:
    log, signer = Log(), NoteSigner("log.example/test", Ed25519PrivateKey.generate())
    notes = []
    for n, size in enumerate(batches):
        root = log.append(entries(size, n))
        notes.append(sign_note(Checkpoint(signer.name, log.size, root).text, signer))
    first, second = sorted(data.draw(st.lists(st.integers(0, len(notes) - 1), min_size=2, max_size=2)))
    old, _ = verify_checkpoint(notes[first], signer.verifier)
    new, _ = verify_checkpoint(notes[second], signer.verifier)
    proof = await log.reader().consistency_proof(old.size, new.size)
    verify_consistency(old.size, new.size, old.root, new.root, proof)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 2000), st.data())
async def test_a_flipped_bit_in_a_proof_is_refused(size: int, data: st.DataObject) -> None:
    log = Log()
    log.append(entries(size))
    index = data.draw(st.integers(0, size - 1))
    proof = await log.reader().inclusion_proof(index, size)
    leaf = leaf_hash(entries(size)[index])
    if not proof:
        return
    which, bit = data.draw(st.integers(0, len(proof) - 1)), data.draw(st.integers(0, 255))
    flipped = list(proof)
    flipped[which] = bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(proof[which]))
    with pytest.raises(LogProofError):
        verify_inclusion(index, size, leaf, flipped, log.roots[size])


def test_edge_tiles_are_the_partial_ones() -> None:
    assert edge_tiles(0) == []
    assert edge_tiles(256) == [(1, 0, 1)]
    assert edge_tiles(70_000) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]


# --- tile paths ---------------------------------------------------------------------------------------


@given(st.one_of(st.none(), st.integers(0, 7)), st.integers(0, 10**12), st.integers(1, TILE_WIDTH))
def test_tile_paths_round_trip(level: int | None, index: int, width: int) -> None:
    assert parse_tile_path(tile_path(level, index, width)) == (level, index, width)


def test_tile_paths_follow_tlog_tiles() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(1, 5, 17) == "tile/1/005.p/17"
    assert tile_path(None, 0) == "tile/entries/000"


@pytest.mark.parametrize(
    "path",
    ["tile/0/1", "tile/0/x001/002/003", "tile/0/000.p/256", "tile/0/000.p/0", "tile/0/000.p/017", "tile/00/000",
     "tile/9/000", "tile/0/x000/001", "tile/../000", "tile/entries/abc", "tile/0/000/"],
)  # fmt: skip
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(TilePathError):
        parse_tile_path(path)


# --- notes, checkpoints, cosignatures, bundles ----------------------------------------------------------


@pytest.fixture
def log_signer() -> NoteSigner:
    return NoteSigner("eproof.example/log", Ed25519PrivateKey.generate())


@pytest.fixture
def witness() -> NoteSigner:
    return NoteSigner("partner.example/witness", Ed25519PrivateKey.generate(), COSIGNATURE_ED25519)


def test_a_signed_checkpoint_verifies_with_its_vkey_and_nothing_else(log_signer: NoteSigner) -> None:
    text = Checkpoint(log_signer.name, 5, bytes(32)).text
    note = sign_note(text, log_signer)
    verifier = NoteVerifier.from_vkey(log_signer.verifier.vkey)
    checkpoint, _ = verify_checkpoint(note, verifier)
    assert (checkpoint.size, checkpoint.root) == (5, bytes(32))
    other = NoteSigner(log_signer.name, Ed25519PrivateKey.generate())
    with pytest.raises(LogProofError, match="no signature by"):
        verify_note(note, other.verifier)  # same name, another key: its key id differs
    forged = note.replace("\n5\n", "\n6\n")
    with pytest.raises(LogProofError, match="does not match"):
        verify_note(forged, verifier)
    stranger = NoteSigner("someone.else/log", Ed25519PrivateKey.generate())
    with pytest.raises(LogProofError, match="not the log expected"):
        verify_checkpoint(sign_note(Checkpoint(stranger.name, 5, bytes(32)).text, stranger), stranger.verifier, "x/log")


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("a\n5\n", "blank line"),
        ("a\n\n— a AAAA\n", "key id"),
        ("a\n\n- a QUJDREVGRw==\n", "em dash"),
        ("a\n\n— a not*base64\n", "base64"),
        ("a\n\n", "no signature"),
        ("a\n\n— a QUJDREVGRw==", "ends with a newline"),
    ],
)
def test_malformed_notes_are_refused_with_the_reason(note: str, reason: str) -> None:
    with pytest.raises(LogProofError, match=reason):
        parse_note(note)


def test_bad_vkeys_are_refused(log_signer: NoteSigner) -> None:
    name, key_id, key = log_signer.verifier.vkey.split("+", 2)
    for vkey in (f"{name}+00000000+{key}", f"{name}+{key_id}", f"{name}+{key_id}+AAAA", f"a b+{key_id}+{key}"):
        with pytest.raises(LogProofError):
            NoteVerifier.from_vkey(vkey)


def test_a_witness_cosignature_verifies_and_a_forged_one_does_not(log_signer: NoteSigner, witness: NoteSigner) -> None:
    text = Checkpoint(log_signer.name, 9, bytes(range(32))).text
    note = sign_note(text, log_signer) + witness.cosignature_line(text, 1_790_000_000)
    parsed = verify_note(note, log_signer.verifier)
    assert verify_cosignature(parsed, witness.verifier) == 1_790_000_000
    impostor = NoteSigner(witness.name, Ed25519PrivateKey.generate(), COSIGNATURE_ED25519)
    with pytest.raises(LogProofError, match="no cosignature"):
        verify_cosignature(parsed, impostor.verifier)
    other_text = Checkpoint(log_signer.name, 10, bytes(range(32))).text
    moved = sign_note(other_text, log_signer) + witness.cosignature_line(text, 1_790_000_000)
    with pytest.raises(LogProofError, match="does not match the checkpoint"):
        verify_cosignature(verify_note(moved, log_signer.verifier), witness.verifier)


async def test_a_proof_bundle_verifies_offline_and_any_change_is_refused(
    log_signer: NoteSigner, witness: NoteSigner
) -> None:
    log, data = Log(), entries(300)
    root = log.append(data)
    text = Checkpoint(log_signer.name, log.size, root).text
    note = sign_note(text, log_signer) + witness.cosignature_line(text, 1_790_000_000)
    bundle = str(ProofBundle(123, await log.reader().inclusion_proof(123, 300), note))
    checkpoint, cosigned = verify_proof_bundle(bundle, data[123], log_signer.verifier, [witness.verifier], quorum=1)
    assert checkpoint.size == 300
    assert cosigned == {witness.name: 1_790_000_000}
    with pytest.raises(LogProofError, match="inclusion proof"):
        verify_proof_bundle(bundle, data[124], log_signer.verifier)
    with pytest.raises(LogProofError, match="witnesses"):
        verify_proof_bundle(bundle, data[123], log_signer.verifier, [], quorum=1)
    with pytest.raises(LogProofError):
        verify_proof_bundle(bundle.replace("index 123", "index 122"), data[123], log_signer.verifier)
    with pytest.raises(LogProofError):
        verify_proof_bundle("c2sp.org/tlog-proof@v2\n" + bundle.split("\n", 1)[1], data[123], log_signer.verifier)
