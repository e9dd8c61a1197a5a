"""Token Status List (sdk.status_list): the draft's own examples, round trips, and refusals."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey, KeySet

from bauhinia.sdk.status_list import (
    StatusList,
    StatusListError,
    status_list_token,
    status_reference,
    verify_status_list_token,
)

URI = "https://eproof.example/eproof/status/HK-GOV-TD/1"
KEY = ECKey.generate_key("P-256", parameters={"kid": "td-1"})
KEYS = KeySet([ECKey.import_key(KEY.as_dict(private=False))])


@pytest.mark.parametrize(
    ("claim", "statuses"),
    [  # draft-ietf-oauth-status-list, section 4.1's examples
        ({"bits": 1, "lst": "eNrbuRgAAhcBXQ"}, [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]),
        ({"bits": 2, "lst": "eNo76fITAAPfAgc"}, [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]),
    ],
)
def test_the_drafts_examples_decode(claim: dict[str, object], statuses: list[int]) -> None:
    decoded = StatusList.decoded(claim)
    assert [decoded.get(i) for i in range(len(statuses))] == statuses
    rebuilt = StatusList.empty(len(statuses), claim["bits"])  # type: ignore[arg-type]
    for index, status in enumerate(statuses):
        rebuilt.set(index, status)
    assert rebuilt.data == decoded.data


@given(st.sampled_from([1, 2, 4, 8]), st.lists(st.integers(0, 255), min_size=1, max_size=300))
def test_any_list_round_trips(bits: int, values: list[int]) -> None:
    statuses = [v % (1 << bits) for v in values]
    status_list = StatusList.empty(len(statuses), bits)
    for index, status in enumerate(statuses):
        status_list.set(index, status)
    decoded = StatusList.decoded(status_list.encoded())
    assert [decoded.get(i) for i in range(len(statuses))] == statuses


def test_a_signed_token_verifies_and_tells_each_status() -> None:
    status_list = StatusList.empty(10_000)
    status_list.set(42, 1)
    status_list.set(43, 2)
    checked = verify_status_list_token(status_list_token(status_list, URI, KEY), KEYS, URI)
    assert (checked.get(41), checked.get(42), checked.get(43)) == (0, 1, 2)


def test_out_of_range_wrong_list_expired_tampered_and_foreign_tokens_are_refused() -> None:
    status_list = StatusList.empty(16)
    with pytest.raises(StatusListError, match="outside"):
        status_list.get(16)
    token = status_list_token(status_list, URI, KEY)
    with pytest.raises(StatusListError, match="another list"):
        verify_status_list_token(token, KEYS, URI + "x")
    old = status_list_token(status_list, URI, KEY, now=int(time.time()) - 90_000)
    with pytest.raises(StatusListError, match="expired"):
        verify_status_list_token(old, KEYS, URI)
    header, payload, signature = token.split(".")
    with pytest.raises(StatusListError, match="does not verify"):
        verify_status_list_token(f"{header}.{payload[:-2]}AA.{signature}", KEYS, URI)
    stranger = ECKey.generate_key("P-256", parameters={"kid": "td-1"})
    with pytest.raises(StatusListError):
        verify_status_list_token(status_list_token(status_list, URI, stranger), KEYS, URI)


@pytest.mark.parametrize(
    "claim",
    [None, {"bits": 3, "lst": "eNrbuRgAAhcBXQ"}, {"bits": 1}, {"bits": 1, "lst": "not zlib"}, {"bits": 1, "lst": "!!"}],
)
def test_malformed_lists_are_refused(claim: object) -> None:
    with pytest.raises(StatusListError):
        StatusList.decoded(claim)


def test_a_zip_bomb_is_refused() -> None:
    import zlib

    from bauhinia.sdk.jose import b64url

    bomb = b64url(zlib.compress(bytes(20 * 1024 * 1024), 9))
    with pytest.raises(StatusListError, match="larger"):
        StatusList.decoded({"bits": 1, "lst": bomb})


def test_a_credentials_status_reference_is_read_or_refused() -> None:
    assert status_reference({"status": {"status_list": {"idx": 7, "uri": URI}}}) == (URI, 7)
    for claims in ({}, {"status": {"status_list": {"idx": -1, "uri": URI}}}, {"status": {"status_list": {"uri": URI}}}):
        with pytest.raises(StatusListError):
            status_reference(claims)
