"""e-Proof: durable appends to the transparency log per second, against the bare SQLite group-commit
rate measured in the same run; and offline verifications of a credential per second.

- **log**: C concurrent appenders call ``TransparencyLog.append`` back to back for N seconds on a
  migrated database (SQLite WAL ``synchronous=FULL``, or PostgreSQL with ``BAUHINIA_BENCH_DATABASE_URL``).
  An append counts once its entry is committed with the tiles it changed and a signed checkpoint
  covering it. Entries are 120-byte log entries like the ones issuance writes.
- **bare group commit** (the baseline): the same number of entries, in batches of the size the log's
  batches had on average, each batch one ``executemany`` INSERT into a table of (index, entry) and one
  COMMIT on a raw sqlite3 connection with the same settings — what the disk and SQLite allow with no
  Merkle tree, no tiles and no signature.
- **offline verification**: one driving-licence credential presented with key binding, checked the way
  ``bauhinia verify`` checks it: the issuer's signature and disclosures (SD-JWT), the key binding, the
  log's checkpoint signature and the inclusion proof (tlog-proof bundle), and its bit in a cached status
  list; repeated for N seconds on one core.

Run: ``.venv/bin/python bench/eproof.py [--seconds N] [--concurrency C]`` (``make bench-eproof``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey, KeySet
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bauhinia.core.database import create_engine  # noqa: E402
from bauhinia.eproof.log import TransparencyLog  # noqa: E402
from bauhinia.eproof.models import Checkpoint  # noqa: E402
from bauhinia.eproof.tiles import TreeReader, append_leaves  # noqa: E402
from bauhinia.migrate import upgrade  # noqa: E402
from bauhinia.sdk.sdjwt import Disclosable, credential_digest, issue_sd_jwt, present, verify_sd_jwt  # noqa: E402
from bauhinia.sdk.status_list import StatusList, status_reference  # noqa: E402
from bauhinia.sdk.transparency import (  # noqa: E402
    Checkpoint as CheckpointBody,
)
from bauhinia.sdk.transparency import (  # noqa: E402
    NoteSigner,
    ProofBundle,
    leaf_hash,
    parse_proof_bundle,
    sign_note,
    verify_proof_bundle,
)

ENTRY_BYTES = 120


async def measure_log(url: str, seconds: float, concurrency: int) -> tuple[int, float, int]:
    """(appends, seconds, checkpoints) for C appenders for ``seconds``."""
    engine = create_engine(url)
    log = TransparencyLog(NoteSigner("bench.example/log", Ed25519PrivateKey.generate()))
    appended = 0
    deadline = time.perf_counter() + seconds

    async def appender(worker: int) -> None:
        nonlocal appended
        n = 0
        while time.perf_counter() < deadline:
            await log.append(engine, worker.to_bytes(4, "big") + n.to_bytes(8, "big") + os.urandom(ENTRY_BYTES - 12))
            appended += 1
            n += 1

    started = time.perf_counter()
    await asyncio.gather(*(appender(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    async with engine.connect() as connection:
        checkpoints = int((await connection.execute(select(func.count()).select_from(Checkpoint))).scalar_one())
    await engine.dispose()
    return appended, elapsed, checkpoints


def measure_bare(path: Path, entries: int, batch: int) -> float:
    """Seconds to commit ``entries`` rows in batches of ``batch`` on raw sqlite3 (WAL, synchronous=FULL)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE entries (id INTEGER PRIMARY KEY, entry BLOB NOT NULL)")
    rows = [(i, os.urandom(ENTRY_BYTES)) for i in range(entries)]
    started = time.perf_counter()
    for offset in range(0, entries, batch):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO entries VALUES (?, ?)", rows[offset : offset + batch])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def measure_verification(seconds: float) -> tuple[int, float]:
    """(verifications, seconds) of one credential, the way `bauhinia verify` checks it offline."""
    issuer = ECKey.generate_key("P-256", parameters={"kid": "td-1"})
    holder = ECKey.generate_key("P-256")
    keys = KeySet([ECKey.import_key(issuer.as_dict(private=False))])
    now = int(time.time())
    uri = "https://eproof.example/eproof/status/TD-1"
    claims = {
        "iss": "https://eproof.example/eproof/issuers/HK/GOV/TD",
        "iat": now,
        "exp": now + 86_400,
        "vct": "https://eproof.example/eproof/types/td.driving-licence",
        "status": {"status_list": {"idx": 4242, "uri": uri}},
        "name_en": Disclosable("CHAN, Tai Man"),
        "name_zh": Disclosable("陳大文"),
        "licence_number": "CTM853271",
        "classes": ["1", "2"],
        "expires_on": Disclosable("2031-05-31"),
    }
    credential = issue_sd_jwt(claims, issuer, holder_jwk=holder.as_dict(private=False))
    presentation = present(credential, {"name_en": True}, holder_key=holder, audience="bank", nonce="n-1")
    entry = credential_digest(credential).encode()
    leaves = [leaf_hash(os.urandom(32)) for _ in range(1_000_000)]
    leaves[777_777] = leaf_hash(entry)
    tree = append_leaves(0, {}, leaves)

    async def read(level: int, index: int) -> bytes:
        return tree.tiles[(level, index)]

    signer = NoteSigner("eproof.example/log", Ed25519PrivateKey.generate())
    note = sign_note(CheckpointBody(signer.name, tree.size, tree.root).text, signer)
    proof = asyncio.run(TreeReader(read).inclusion_proof(777_777, tree.size))
    bundle = str(ProofBundle(777_777, proof, note, extra=entry))
    statuses = StatusList.empty(100_000)
    log_key = signer.verifier

    def verify_once() -> None:
        verified = verify_sd_jwt(presentation, keys, require_key_binding=True, audience="bank", nonce="n-1")
        digest = credential_digest(presentation).encode()
        if parse_proof_bundle(bundle).extra != digest:
            raise AssertionError("the bundle is for another credential")
        verify_proof_bundle(bundle, digest, log_key)
        _, index = status_reference(verified.claims)
        if statuses.get(index) != 0:
            raise AssertionError("revoked")

    verify_once()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        verify_once()
        count += 1
    return count, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=256, help="concurrent appenders")
    options = parser.parse_args(argv)
    console = Console()
    url_pg = os.environ.get("BAUHINIA_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="bauhinia-bench-eproof-") as scratch:
        url = url_pg or f"sqlite+aiosqlite:///{Path(scratch) / 'log.db'}"
        if url_pg and "bench" not in url_pg.rsplit("/", 1)[-1]:
            console.print("BAUHINIA_BENCH_DATABASE_URL must name a database whose name contains 'bench'")
            return 2
        with console.status("Migrating a scratch database…"):
            upgrade(url)
        with console.status(f"Appending for {options.seconds:g} s with {options.concurrency} appenders…"):
            appends, elapsed, checkpoints = asyncio.run(measure_log(url, options.seconds, options.concurrency))
        batch = max(1, round(appends / max(checkpoints, 1)))
        with console.status("The bare SQLite group-commit baseline…"):
            bare = measure_bare(Path(scratch) / "bare.db", appends, batch)
        with console.status(f"Verifying a credential offline for {options.seconds:g} s…"):
            verified, verify_elapsed = measure_verification(options.seconds)
    log_rate, bare_rate = appends / elapsed, appends / bare
    table = Table(title=f"e-Proof — {'PostgreSQL' if url_pg else 'SQLite (WAL, synchronous=FULL)'}")
    for column in ("measure", "figure", "against", "ratio"):
        table.add_column(column, justify="right" if column != "measure" else "left")
    table.add_row(
        "durable appends/s (committed, under a signed checkpoint)",
        f"{log_rate:,.0f}",
        f"bare SQLite group commit {bare_rate:,.0f}/s",
        f"{log_rate / bare_rate:.2f}×",
    )
    table.add_row("appends, checkpoints, mean batch", f"{appends:,}, {checkpoints:,}, {batch:,}", "", "")
    per_verification = verify_elapsed / verified * 1e3
    table.add_row("offline verification, ms per credential", f"{per_verification:.3f}", "goal < 1 ms", "")
    console.print(table)
    appends_verdict = "meets" if log_rate >= 5000 else "misses"
    verify_verdict = "meets" if per_verification < 1 else "misses"
    console.print(f"Goal ≥ 5,000 durable appends/s: {log_rate:,.0f}/s, {appends_verdict} it.")
    console.print(f"Goal < 1 ms per offline verification: {per_verification:.3f} ms, {verify_verdict} it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
