"""A monitor outside the platform (sdk.monitor, `bauhinia eproof monitor`) reads the public log over
real HTTP, rebuilds the tree from its entries and holds it against each signed checkpoint: it follows
the log as it grows, and catches entries changed on the server, a rewritten history, a shrunk log, a
log signed by another key and personal data in an entry."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import text

from bauhinia.sdk.monitor import LogMonitor, MonitorState, Observation
from bauhinia.sdk.transparency import LogProofError, NoteSigner
from bauhinia.settings import Settings
from tests.eproof_support import Departments, registered_departments
from tests.helpers import make_resident
from tests.in_loop import InLoopServer, serve_in_loop
from tests.integration.test_cli import env_for, invoke


@pytest.fixture
async def departments(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Departments:
    return await registered_departments(app, client, settings)


@pytest.fixture
async def served(app: FastAPI) -> AsyncIterator[InLoopServer]:
    server = await serve_in_loop(app)
    yield server
    await server.aclose()


async def issue(app: FastAPI, departments: Departments, count: int) -> list[str]:
    resident = await make_resident(app)
    ids = []
    for _ in range(count):
        answer = await departments.issue(resident)
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    return ids


async def log_vkey(served: InLoopServer) -> str:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{served.base_url}/.well-known/bauhinia-eproof")).json()
    return str(document["log"]["vkey"])


async def observe(served: InLoopServer, state: MonitorState) -> Observation:
    """The SDK's monitor is synchronous (a script's or a cron job's); it runs beside the served app."""

    def run() -> Observation:
        with httpx.Client(timeout=10) as http:
            return LogMonitor(http, f"{served.base_url}/eproof/log", state).observe()

    return await asyncio.to_thread(run)


async def test_a_monitor_follows_the_log_as_it_grows(
    app: FastAPI, departments: Departments, served: InLoopServer
) -> None:
    ids = await issue(app, departments, 3)
    state = MonitorState(await log_vkey(served))
    first = await observe(served, state)
    assert (first.previous_size, first.checkpoint.size, first.new_events) == (0, 3, {"issued": 3})
    await issue(app, departments, 2)
    assert (await departments.set_status(ids[0], "revoked")).status_code == 200
    state = MonitorState.from_json(state.to_json())  # as a later run reads it back
    second = await observe(served, state)
    assert (second.previous_size, second.checkpoint.size) == (3, 6)
    assert second.new_events == {"issued": 2, "revoked": 1}
    assert state.events == {"issued": 5, "revoked": 1}
    again = await observe(served, state)
    assert (again.previous_size, again.checkpoint.size, again.new_events) == (6, 6, {})


async def test_entries_changed_on_the_server_are_caught(
    app: FastAPI, departments: Departments, served: InLoopServer
) -> None:
    await issue(app, departments, 3)
    async with app.state.sessionmaker() as db:
        stored = await db.execute(text('SELECT entry FROM eproof_log_entries WHERE "index" = 1'))
        altered = json.loads(stored.scalar_one())
        altered["event"] = "revoked"
        await db.execute(
            text('UPDATE eproof_log_entries SET entry = :entry WHERE "index" = 1'),
            {"entry": json.dumps(altered, separators=(",", ":"), sort_keys=True).encode()},
        )
        await db.commit()
    with pytest.raises(LogProofError, match="entries the log serves do not match its signed checkpoint of 3"):
        await observe(served, MonitorState(await log_vkey(served)))


async def test_personal_data_in_an_entry_is_named(app: FastAPI, departments: Departments, served: InLoopServer) -> None:
    await issue(app, departments, 2)
    async with app.state.sessionmaker() as db:
        await db.execute(
            text('UPDATE eproof_log_entries SET entry = :entry WHERE "index" = 1'),
            {"entry": b'{"event":"issued","name":"CHAN Tai Man","v":1}'},
        )
        await db.commit()
    state = MonitorState(await log_vkey(served))
    with pytest.raises(LogProofError, match="entry 1 holds fields the log does not promise: name"):
        await observe(served, state)
    assert state.size == 0  # nothing is remembered from a run that found a fault


async def test_a_rewritten_history_a_shrunk_log_and_another_key_are_caught(
    app: FastAPI, departments: Departments, served: InLoopServer
) -> None:
    await issue(app, departments, 3)
    vkey = await log_vkey(served)
    state = MonitorState(vkey)
    await observe(served, state)
    await issue(app, departments, 1)
    forked = MonitorState.from_json(state.to_json())
    forked.subtrees[-1] = base64.b64encode(bytes(32)).decode()  # what this monitor saw differs from the log
    with pytest.raises(LogProofError, match="does not extend the 3 entries seen before: the log rewrote its history"):
        await observe(served, forked)
    same_size = MonitorState(vkey, 4, [base64.b64encode(bytes(32)).decode()])  # a tree of 4 with another root
    with pytest.raises(LogProofError, match="does not extend the 4 entries seen before"):
        await observe(served, same_size)
    ahead = MonitorState(vkey, 8, [base64.b64encode(bytes(32)).decode()])
    with pytest.raises(LogProofError, match="the log shrank: its checkpoint has 4 entries, 8 were seen"):
        await observe(served, ahead)
    stranger = NoteSigner("bauhinia.test/eproof", Ed25519PrivateKey.generate()).verifier.vkey
    with pytest.raises(LogProofError, match="no signature"):
        await observe(served, MonitorState(stranger))


class NoConsistencyProofs(httpx.HTTPTransport):
    """A log that will not prove its history: every consistency request is 404."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/consistency"):
            return httpx.Response(404, json={"title": "Not Found"})
        return super().handle_request(request)


async def test_a_log_that_will_not_prove_its_history_is_said_to_have_rewritten_it(
    app: FastAPI, departments: Departments, served: InLoopServer
) -> None:
    await issue(app, departments, 3)
    state = MonitorState(await log_vkey(served))
    await observe(served, state)
    await issue(app, departments, 1)
    state.subtrees[-1] = base64.b64encode(bytes(32)).decode()

    def run() -> None:
        with httpx.Client(transport=NoConsistencyProofs(), timeout=10) as http:
            LogMonitor(http, f"{served.base_url}/eproof/log", state).observe()

    with pytest.raises(LogProofError, match="the log rewrote its history"):
        await asyncio.to_thread(run)


def test_a_state_that_describes_no_tree_is_refused() -> None:
    vkey = NoteSigner("bauhinia.test/eproof", Ed25519PrivateKey.generate()).verifier.vkey
    good = MonitorState(vkey, 3, [base64.b64encode(bytes(32)).decode()] * 2)
    assert MonitorState.from_json(good.to_json()) == good
    for size, subtrees in ((3, 1), (4, 2), (0, 1)):
        bad = MonitorState(vkey, size, [base64.b64encode(bytes(32)).decode()] * subtrees)
        with pytest.raises(ValueError, match="does not describe a tree"):
            MonitorState.from_json(bad.to_json())


async def test_the_monitor_command_pins_the_key_then_follows_and_fails_on_a_fault(
    app: FastAPI, departments: Departments, served: InLoopServer, settings: Settings, tmp_path: Path
) -> None:
    await issue(app, departments, 2)
    state_file = tmp_path / "monitor.json"
    command = ["eproof", "monitor", served.base_url, "--state", str(state_file)]
    first = await invoke(command, env_for(settings))
    assert first.exit_code == 0, first.output
    assert "Pinned the log's key on first use" in first.output
    assert "The log checks out: 2 entries, 2 read now (2 issued)" in first.output
    assert json.loads(state_file.read_text())["size"] == 2
    await issue(app, departments, 1)
    second = await invoke(command, env_for(settings))
    assert second.exit_code == 0, second.output
    assert "3 entries, 1 read now (1 issued)" in second.output
    assert "Pinned" not in second.output
    async with app.state.sessionmaker() as db:
        await db.execute(text("UPDATE eproof_checkpoints SET note = replace(note, 'eproof', 'eProof')"))
        await db.commit()
    tampered = await invoke(command, env_for(settings))
    assert tampered.exit_code == 1
    assert "The log does not check out" in tampered.output
    assert json.loads(state_file.read_text())["size"] == 3  # unchanged
    other_trust = tmp_path / "trust.json"
    other_trust.write_text(
        json.dumps(
            {
                "log_vkey": NoteSigner("x.example/log", Ed25519PrivateKey.generate()).verifier.vkey,
                "base_url": "",
                "issuers": {},
                "status_lists": {},
                "status_tokens": {},
                "credential_types": {},
                "fetched_at": 0,
            }
        )
    )
    warned = await invoke([*command, "--trust", str(other_trust)], env_for(settings))
    assert "names another log key than the pinned one" in warned.output
    too_late = await invoke(["eproof", "rotate-key", "HK/GOV/TD", "--activate-in", str(10**12)], env_for(settings))
    assert too_late.exit_code == 2  # refused by the option's range, not a traceback
    unreachable = await invoke(["eproof", "monitor", "http://127.0.0.1:9", "--state", str(tmp_path / "x.json")])
    assert unreachable.exit_code == 2
    assert "Could not read the log" in unreachable.output
