"""Watching e-Proof's transparency log from outside, as anyone may (a journalist, an auditor, another
government): every entry is read once, the tree is rebuilt from them and held against each signed
checkpoint, and the log is caught if it ever rewrites or drops what it signed before.

A monitor keeps a small state between runs (``MonitorState``): the log's pinned verifier key, the size
it has checked up to and the tree's right edge (a ``CompactRange``), so a run reads only the new
entries. Entries are read as C2SP tlog-tiles entry bundles, whose URLs never change and cache well.

Each finding is a ``LogProofError`` that says what did not hold; nothing in the state changes then.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeGuard

import httpx

from bauhinia.sdk.transparency import (
    HASH_SIZE,
    TILE_WIDTH,
    Checkpoint,
    CompactRange,
    LogProofError,
    NoteVerifier,
    leaf_hash,
    parse_entry_bundle,
    tile_path,
    verify_checkpoint,
    verify_consistency,
)

# What an e-Proof log entry holds: an event about a credential, by digests only (docs/eproof.md).
ENTRY_FIELDS = frozenset({"v", "event", "type", "credential", "sd_jwt", "printed", "at"})
EVENTS = frozenset({"issued", "revoked", "suspended", "reinstated"})


@dataclass
class MonitorState:
    """What a monitor remembers between runs (JSON on disk)."""

    log_vkey: str
    size: int = 0
    subtrees: list[str] = field(default_factory=list)  # the CompactRange, base64
    events: dict[str, int] = field(default_factory=dict)  # every event seen, by kind

    @property
    def compact_range(self) -> CompactRange:
        return CompactRange(self.size, [base64.b64decode(h) for h in self.subtrees])

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)

    @classmethod
    def from_json(cls, text: str) -> MonitorState:
        """The state as written by ``to_json``; ``ValueError`` if it does not describe a tree of its size."""
        values = json.loads(text)
        size, subtrees, events = values.get("size"), values.get("subtrees"), values.get("events", {})
        if (
            not isinstance(values.get("log_vkey"), str)
            or not _is_count(size)
            or not isinstance(subtrees, list)
            or len(subtrees) != size.bit_count()
            or not all(_is_hash(h) for h in subtrees)
            or not isinstance(events, dict)
            or not all(isinstance(k, str) and _is_count(n) for k, n in events.items())
        ):
            raise ValueError("the monitor's state does not describe a tree of its size")
        return cls(values["log_vkey"], size, subtrees, events)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: object) -> bool:
    try:
        return isinstance(value, str) and len(base64.b64decode(value, validate=True)) == HASH_SIZE
    except ValueError:
        return False


@dataclass(frozen=True)
class Observation:
    """One run: the checkpoint checked, how far the monitor had read before, and what was new."""

    checkpoint: Checkpoint
    previous_size: int
    new_events: dict[str, int]


Progress = Callable[[int, int], None]  # (entries read, entries to read)


class LogMonitor:
    """Reads a log at ``log_url`` (``{public URL}/eproof/log``) with a caller's HTTP client."""

    def __init__(self, http: httpx.Client, log_url: str, state: MonitorState) -> None:
        self.http, self.log_url, self.state = http, log_url.rstrip("/"), state
        self.verifier = NoteVerifier.from_vkey(state.log_vkey)

    def observe(self, progress: Progress | None = None) -> Observation:
        """Check the latest checkpoint against every entry up to it; the state moves on only if it holds."""
        note = self._get("checkpoint").text
        checkpoint, _ = verify_checkpoint(note, self.verifier)
        previous = self.state.size
        if checkpoint.size < previous:
            raise LogProofError(f"the log shrank: its checkpoint has {checkpoint.size} entries, {previous} were seen")
        tree, events = self.state.compact_range, Counter[str]()
        for index, entry in self._entries(previous, checkpoint.size, progress):
            events[event_of(index, entry)] += 1
            tree.extend([leaf_hash(entry)])
        if tree.root() != checkpoint.root:
            raise LogProofError(self._why_the_root_differs(checkpoint))
        self.state.size = checkpoint.size
        self.state.subtrees = [base64.b64encode(h).decode() for h in tree.subtrees]
        self.state.events = dict(Counter(self.state.events) + events)
        return Observation(checkpoint, previous, dict(events))

    def _entries(self, start: int, end: int, progress: Progress | None) -> Iterator[tuple[int, bytes]]:
        """Entries ``start`` to ``end`` (exclusive), one entry bundle at a time."""
        for tile in range(start // TILE_WIDTH, -(-end // TILE_WIDTH)):
            first = tile * TILE_WIDTH
            width = min(TILE_WIDTH, end - first)
            bundle = parse_entry_bundle(self._get(tile_path(None, tile, width)).content, width)
            yield from ((first + i, e) for i, e in enumerate(bundle) if first + i >= start)
            if progress is not None:
                progress(first + width - start, end - start)

    def _why_the_root_differs(self, checkpoint: Checkpoint) -> str:
        """Either the log rewrote what it had signed (no consistency proof from the old tree), or it
        serves entries other than those it signed."""
        old = self.state.compact_range
        rewritten = (
            f"the log's checkpoint of {checkpoint.size} entries does not extend the {old.size} entries seen "
            "before: the log rewrote its history"
        )
        if old.size == checkpoint.size:
            return rewritten  # the same size with another root
        if old.size:
            try:
                answer = self.http.get(
                    f"{self.log_url}/consistency", params={"from": old.size, "to": checkpoint.size}
                ).raise_for_status()
                proof = [base64.b64decode(h) for h in answer.json()["proof"]]
                verify_consistency(old.size, checkpoint.size, old.root(), checkpoint.root, proof)
            except (LogProofError, httpx.HTTPError, ValueError, KeyError, TypeError, RecursionError):
                return rewritten  # the root already fails: a log that will not prove its history gets no benefit
        return f"the entries the log serves do not match its signed checkpoint of {checkpoint.size} entries"

    def _get(self, path: str) -> httpx.Response:
        return self.http.get(f"{self.log_url}/{path}").raise_for_status()


def event_of(index: int, entry: bytes) -> str:
    """The entry's event, if it is an e-Proof log entry that holds nothing but what the log promises;
    anything else, however hostile, is a ``LogProofError`` naming the entry."""
    try:
        body = json.loads(entry)
    except (ValueError, RecursionError):
        raise LogProofError(f"entry {index} is not an e-Proof log entry (not JSON)") from None
    if not isinstance(body, dict):
        raise LogProofError(f"entry {index} is not an e-Proof log entry")
    extra = sorted(set(body) - ENTRY_FIELDS)
    if extra:
        raise LogProofError(f"entry {index} holds fields the log does not promise: {', '.join(extra)}")
    event = body.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise LogProofError(f"entry {index} names no known event")
    return event
