"""The e-Proof transparency log: entries appended in batches, each batch one transaction that stores its
entries, the hash tiles it changed and one signed checkpoint; and the reads the tlog-tiles API serves.

An append returns only once its entry is committed *and* covered by a signed checkpoint. Whatever must
be stored with an entry (the credential it logs) is written by the caller's ``also`` in the same
transaction, so a credential never exists without its log entry or the other way round.

Appends serialise on the log: SQLite's write lock, or a transaction-scoped advisory lock on PostgreSQL
(several nodes may append; one batch at a time extends the tree).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, func, insert, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bauhinia.core.database import utcnow
from bauhinia.core.keys import KeyRing, Purpose
from bauhinia.eproof.models import Checkpoint, Cosignature, LogEntry, LogTile
from bauhinia.eproof.tiles import TILE_WIDTH, TreeReader, append_leaves, edge_tiles
from bauhinia.sdk.transparency import (
    Checkpoint as CheckpointBody,
)
from bauhinia.sdk.transparency import (
    LogProofError,
    NoteSigner,
    ProofBundle,
    leaf_hash,
    sign_note,
    verify_checkpoint,
)

MAX_BATCH = 4000
ADVISORY_LOCK = 0x6570726F6F66  # "eproof": PostgreSQL transaction-scoped advisory lock key
Also = Callable[[AsyncSession, int], Awaitable[None]]


class LogUnavailable(RuntimeError):
    """The batch an entry was in could not be committed (the caller's request fails; nothing was logged)."""


@dataclass(frozen=True)
class LogReport:
    ok: bool
    entries: int  # entries checked before the first problem (all of them when ok)
    problem: str


@dataclass
class _Pending:
    entry: bytes
    also: Also | None
    done: asyncio.Future[int]


def log_signer(keyring: KeyRing, origin: str) -> NoteSigner:
    """The log's Ed25519 key, derived from the master secret: nothing to store, the same on every node."""
    return NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(keyring.derive(Purpose.EPROOF_LOG_KEY)))


class TransparencyLog:
    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer
        self.origin = signer.name
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    # --- appending --------------------------------------------------------------------------------

    async def append(self, engine: AsyncEngine, entry: bytes, also: Also | None = None) -> int:
        """The entry's index, once it is committed under a signed checkpoint (with what ``also`` wrote)."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(entry, also, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(engine))
        return await done

    async def _write_batches(self, engine: AsyncEngine) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                first = await self._commit(engine, batch)
            except Exception as exc:
                if len(batch) > 1:  # one bad ``also`` must not sink the others: try each alone
                    for one in batch:
                        await self._retry_alone(engine, one)
                    continue
                _fail(batch, exc)
                continue
            for offset, pending in enumerate(batch):
                if not pending.done.done():
                    pending.done.set_result(first + offset)

    async def _retry_alone(self, engine: AsyncEngine, pending: _Pending) -> None:
        try:
            index = await self._commit(engine, [pending])
        except Exception as exc:
            _fail([pending], exc)
        else:
            if not pending.done.done():
                pending.done.set_result(index)

    async def _commit(self, engine: AsyncEngine, batch: list[_Pending]) -> int:
        async with AsyncSession(engine, expire_on_commit=False) as db:
            if engine.dialect.name == "postgresql":
                await db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            size = await self.size(db)
            edges = await self._edges(db, size)
            appended = append_leaves(size, edges, [leaf_hash(p.entry) for p in batch])
            await db.execute(insert(LogEntry), [{"index": size + i, "entry": p.entry} for i, p in enumerate(batch)])
            await self._store_tiles(db, appended.tiles, size)
            for offset, pending in enumerate(batch):
                if pending.also is not None:
                    await pending.also(db, size + offset)
            note = sign_note(CheckpointBody(self.origin, appended.size, appended.root).text, self.signer)
            db.add(Checkpoint(size=appended.size, root=appended.root, note=note, created_at=utcnow()))
            await db.commit()
            return size

    async def _edges(self, db: AsyncSession, size: int) -> dict[int, bytes]:
        edges = {}
        for level, index, width in edge_tiles(size):
            hashes = await db.scalar(select(LogTile.hashes).where(LogTile.level == level, LogTile.index == index))
            if hashes is None or len(hashes) < width * 32:
                raise LogUnavailable(f"the log's level-{level} edge tile is missing or short")
            edges[level] = bytes(hashes[: width * 32])
        return edges

    async def _store_tiles(self, db: AsyncSession, tiles: dict[tuple[int, int], bytes], size: int) -> None:
        """Partial tiles grow in place: the ones the batch extended are replaced, the rest inserted."""
        grown = [(level, index) for level, index, _ in edge_tiles(size) if (level, index) in tiles]
        if grown:
            await db.execute(delete(LogTile).where(tuple_(LogTile.level, LogTile.index).in_(grown)))
        rows = [{"level": level, "index": index, "hashes": hashes} for (level, index), hashes in tiles.items()]
        await db.execute(insert(LogTile), rows)

    # --- reading ----------------------------------------------------------------------------------

    async def size(self, db: AsyncSession) -> int:
        return int(await db.scalar(select(func.max(Checkpoint.size))) or 0)

    async def checkpoint(self, db: AsyncSession, size: int | None = None) -> str | None:
        """The signed checkpoint (the latest, or of one size) with the witnesses' cosignatures."""
        query = select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1)
        if size is not None:
            query = select(Checkpoint).where(Checkpoint.size == size)
        row = await db.scalar(query)
        if row is None:
            return None
        lines = await db.scalars(select(Cosignature.signature_line).where(Cosignature.size == row.size))
        return row.note + "".join(lines)

    def reader(self, db: AsyncSession) -> TreeReader:
        async def read(level: int, index: int) -> bytes:
            hashes = await db.scalar(select(LogTile.hashes).where(LogTile.level == level, LogTile.index == index))
            if hashes is None:
                raise LookupError(f"no level-{level} tile {index}")
            return bytes(hashes)

        return TreeReader(read)

    async def tile(self, db: AsyncSession, level: int, index: int, width: int) -> bytes | None:
        """A hash tile of ``width`` hashes, if the log has that many there."""
        hashes = await db.scalar(select(LogTile.hashes).where(LogTile.level == level, LogTile.index == index))
        if hashes is None or len(hashes) < width * 32:
            return None
        return bytes(hashes[: width * 32])

    async def entry_bundle(self, db: AsyncSession, index: int, width: int) -> bytes | None:
        """tlog-tiles' entry bundle: each entry as a big-endian uint16 length and its bytes."""
        start = index * TILE_WIDTH
        rows = list(
            await db.scalars(
                select(LogEntry.entry)
                .where(LogEntry.index >= start, LogEntry.index < start + width)
                .order_by(LogEntry.index)
            )
        )
        if len(rows) < width:
            return None
        return b"".join(len(e).to_bytes(2, "big") + bytes(e) for e in rows)

    async def proof_bundle(self, db: AsyncSession, index: int, entry: bytes) -> str | None:
        """A C2SP tlog-proof for an entry: its inclusion in the latest checkpoint, the entry as extra."""
        size = await self.size(db)
        note = await self.checkpoint(db, size)
        if note is None or index >= size:
            return None
        proof = await self.reader(db).inclusion_proof(index, size)
        return str(ProofBundle(index, proof, note, extra=entry))

    async def consistency(self, db: AsyncSession, first: int, second: int) -> list[str]:
        proof = await self.reader(db).consistency_proof(first, second)
        return [base64.b64encode(h).decode() for h in proof]

    # --- checking ---------------------------------------------------------------------------------

    async def check(self, db: AsyncSession, progress: Callable[[int, int], None] | None = None) -> LogReport:
        """Rebuild the tree from the stored entries and hold every checkpoint and tile against it: an
        entry changed, removed or added, a tile altered, or a checkpoint altered or unsigned shows."""
        checkpoints = list(
            await db.execute(select(Checkpoint.size, Checkpoint.root, Checkpoint.note).order_by(Checkpoint.size))
        )
        total = checkpoints[-1][0] if checkpoints else 0
        stored = int(await db.scalar(select(func.count()).select_from(LogEntry)) or 0)
        size = 0
        edges: dict[int, bytes] = {}
        tiles: dict[tuple[int, int], bytes] = {}
        pending = iter(checkpoints)
        target = next(pending, None)
        batch: list[bytes] = []
        async for index, entry in await self._entries(db):
            if index != size + len(batch):
                return LogReport(False, size + len(batch), f"entry {size + len(batch)} is missing")
            batch.append(leaf_hash(bytes(entry)))
            if target is None:
                return LogReport(False, size, f"entry {index} is not covered by any checkpoint (added)")
            if size + len(batch) == target[0]:  # a batch as it was appended: rebuild it, hold its checkpoint
                appended = append_leaves(size, edges, batch)
                size, edges, batch = appended.size, appended.edges, []
                tiles.update(appended.tiles)
                problem = self._checkpoint_problem(target[0], appended.root, target[1], target[2])
                if problem:
                    return LogReport(False, size, problem)
                target = next(pending, None)
                if progress is not None:
                    progress(size, max(total, stored))
        if target is not None:
            return LogReport(
                False, size + len(batch), f"the log holds {size + len(batch)} entries, its checkpoints {total}"
            )
        for level, index, hashes in await db.execute(select(LogTile.level, LogTile.index, LogTile.hashes)):
            if tiles.get((level, index)) != bytes(hashes):
                return LogReport(False, size, f"the level-{level} tile {index} does not match the entries")
        if len(tiles) != len(list(await db.scalars(select(LogTile.level)))):
            return LogReport(False, size, "tiles are missing")
        if progress is not None:
            progress(size, max(total, stored))
        return LogReport(True, size, "")

    async def _entries(self, db: AsyncSession) -> Any:
        return await db.stream(
            select(LogEntry.index, LogEntry.entry).order_by(LogEntry.index).execution_options(yield_per=5000)
        )

    def _checkpoint_problem(self, size: int, root: bytes, stored_root: bytes, note: str) -> str:
        try:
            checkpoint, _ = verify_checkpoint(note, self.signer.verifier)
        except LogProofError as exc:
            return f"the checkpoint at {size} entries does not verify: {exc}"
        if checkpoint.size != size or checkpoint.root != root or bytes(stored_root) != root:
            return f"the checkpoint at {size} entries does not match the entries (an entry was changed)"
        return ""

    async def cosign(self, db: AsyncSession, size: int, witness: str, line: str) -> None:
        db.add(Cosignature(size=size, witness=witness, signature_line=line, received_at=utcnow()))
        await db.commit()


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(LogUnavailable(str(exc)) if not isinstance(exc, LogUnavailable) else exc)


__all__ = ["LogReport", "LogUnavailable", "TransparencyLog", "log_signer"]
