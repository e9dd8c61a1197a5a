"""The transparency log on a real database: concurrent appends in batches, one signed checkpoint per
batch, entries and tiles that reproduce the checkpoints, proofs that verify offline, and an ``also``
that fails only its own entry."""

from __future__ import annotations

import asyncio
import base64
import itertools

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bauhinia.eproof.log import LogUnavailable, TransparencyLog, log_signer
from bauhinia.eproof.models import Checkpoint, LogEntry
from bauhinia.sdk.transparency import (
    NoteVerifier,
    leaf_hash,
    parse_proof_bundle,
    verify_checkpoint,
    verify_consistency,
    verify_proof_bundle,
)


@pytest.fixture
def log(app: FastAPI) -> TransparencyLog:
    return TransparencyLog(log_signer(app.state.keyring, "eproof.test/log"))


async def test_concurrent_appends_get_distinct_indexes_under_signed_checkpoints(
    app: FastAPI, log: TransparencyLog
) -> None:
    entries = [f"entry {n}".encode() for n in range(700)]
    indexes: list[int] = []
    for start, end in ((0, 1), (1, 300), (300, 700)):  # three waves of concurrent appends
        indexes += await asyncio.gather(*(log.append(app.state.engine, e) for e in entries[start:end]))
    assert sorted(indexes) == list(range(700))
    verifier = NoteVerifier.from_vkey(log.signer.verifier.vkey)
    async with app.state.sessionmaker() as db:
        checkpoints = list(await db.scalars(select(Checkpoint).order_by(Checkpoint.size)))
        assert len(checkpoints) == 3  # one per batch: each wave's appends were committed together
        reader = log.reader(db)
        for row in checkpoints:
            checkpoint, _ = verify_checkpoint(row.note, verifier)
            assert checkpoint.size == row.size
            assert await reader.root(row.size) == checkpoint.root
        for older, newer in itertools.pairwise(checkpoints):
            proof = [base64.b64decode(h) for h in await log.consistency(db, older.size, newer.size)]
            verify_consistency(older.size, newer.size, older.root, newer.root, proof)
        for index in (0, 255, 256, 699):
            entry = entries[indexes.index(index)]
            bundle = await log.proof_bundle(db, index, entry)
            assert bundle is not None
            verify_proof_bundle(bundle, entry, verifier)
            assert parse_proof_bundle(bundle).extra == entry
        stored = await db.scalar(select(LogEntry.entry).where(LogEntry.index == 5))
        assert stored == entries[indexes.index(5)]


async def test_what_an_entry_brings_is_committed_with_it_and_a_failure_sinks_only_its_own(
    app: FastAPI, log: TransparencyLog
) -> None:
    seen: list[int] = []

    async def note_index(db: AsyncSession, index: int) -> None:
        seen.append(index)

    async def refuse(db: AsyncSession, index: int) -> None:
        raise ValueError("this credential cannot be stored")

    results = await asyncio.gather(
        *(log.append(app.state.engine, f"e{n}".encode(), refuse if n == 3 else note_index) for n in range(10)),
        return_exceptions=True,
    )
    failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [3]
    assert isinstance(results[3], LogUnavailable)
    async with app.state.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(LogEntry)) == 9
        assert await log.size(db) == 9
        assert sorted(i for i in results if isinstance(i, int)) == list(range(9))


async def test_tiles_and_entry_bundles_are_served_as_stored(app: FastAPI, log: TransparencyLog) -> None:
    entries = [bytes([n % 256]) * (n % 40) for n in range(300)]
    for chunk in (entries[:100], entries[100:]):
        await asyncio.gather(*(log.append(app.state.engine, e) for e in chunk))
    async with app.state.sessionmaker() as db:
        full = await log.tile(db, 0, 0, 256)
        assert full is not None
        assert len(full) == 256 * 32
        partial = await log.tile(db, 0, 1, 44)
        assert partial is not None
        assert await log.tile(db, 0, 1, 45) is None
        bundle = await log.entry_bundle(db, 0, 256)
        assert bundle is not None
        position, decoded = 0, []
        while position < len(bundle):
            length = int.from_bytes(bundle[position : position + 2], "big")
            decoded.append(bundle[position + 2 : position + 2 + length])
            position += 2 + length
        assert [leaf_hash(e) for e in decoded] == [full[i * 32 : i * 32 + 32] for i in range(256)]
