"""sdk.monitor's own checks, without a log: what an entry may hold and what a state file may say."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bauhinia.sdk.monitor import MonitorState, event_of
from bauhinia.sdk.transparency import LogProofError, NoteSigner

VKEY = NoteSigner("bauhinia.test/eproof", Ed25519PrivateKey.generate()).verifier.vkey
HASH = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (b'{"event":[]}', "names no known event"),
        (b'{"event":{"a":1}}', "names no known event"),
        (b'{"event":"deleted"}', "names no known event"),
        (b"[" * 60_000, "not an e-Proof log entry"),
        (b"\xff\xfe", "not an e-Proof log entry"),
        (b"[1]", "not an e-Proof log entry"),
        (b'{"event":"issued","name":"CHAN"}', "fields the log does not promise: name"),
    ],
)
def test_a_hostile_entry_is_a_finding_not_a_crash(entry: bytes, why: str) -> None:
    with pytest.raises(LogProofError, match=why):
        event_of(7, entry)


def test_a_well_formed_entry_gives_its_event() -> None:
    assert event_of(0, b'{"v":1,"event":"revoked","type":"td.driving-licence"}') == "revoked"


@pytest.mark.parametrize(
    "values",
    [
        {"size": -1, "subtrees": [HASH]},
        {"size": 3, "subtrees": [HASH]},
        {"size": 1, "subtrees": ["!!!"]},
        {"size": 1, "subtrees": [base64.b64encode(bytes(31)).decode()]},
        {"size": 1, "subtrees": [HASH], "events": {"issued": "many"}},
        {"size": "1", "subtrees": [HASH]},
    ],
)
def test_a_state_file_that_describes_no_tree_is_refused(values: dict[str, object]) -> None:
    text = json.dumps({"log_vkey": VKEY, "events": {}} | values)
    with pytest.raises(ValueError, match="monitor's state"):
        MonitorState.from_json(text)


def test_a_good_state_file_reads_back() -> None:
    state = MonitorState(VKEY, 3, [HASH, HASH], {"issued": 3})
    assert MonitorState.from_json(state.to_json()) == state
