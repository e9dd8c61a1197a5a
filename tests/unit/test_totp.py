"""TOTP (RFC 6238): drift window, codes good only once, replays told apart from wrong codes."""

from __future__ import annotations

import base64

import pyotp
import pytest

from bauhinia.identity import totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
AT = 1_700_000_000.0  # a fixed instant, so the tests never straddle a 30-second boundary by accident
STEP = int(AT // totp.INTERVAL)


def code_at_step(step: int) -> str:
    return totp.current_code(SECRET, step * totp.INTERVAL)


def test_rfc6238_sha1_vector() -> None:
    # RFC 6238 appendix B: the ASCII secret "12345678901234567890", T = 59 s, 8 digits -> 94287082.
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert pyotp.TOTP(secret, digits=8).at(59) == "94287082"
    assert totp.current_code(secret, 59) == "287082"


def test_new_secrets_are_160_bits_and_distinct() -> None:
    secrets = {totp.new_secret() for _ in range(20)}
    assert len(secrets) == 20
    assert all(len(s) == 32 for s in secrets)


def test_provisioning_uri_names_the_issuer() -> None:
    uri = totp.provisioning_uri(SECRET, "resident@example.hk")
    assert uri.startswith("otpauth://totp/Bauhinia:resident%40example.hk?")
    assert f"secret={SECRET}" in uri


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_within_one_step_of_drift_are_accepted(offset: int) -> None:
    assert totp.matching_step(SECRET, code_at_step(STEP + offset), None, at=AT) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_codes_outside_the_window_are_refused(offset: int) -> None:
    code = code_at_step(STEP + offset)
    if code in {code_at_step(STEP + d) for d in (-1, 0, 1)}:
        pytest.skip("the code happens to repeat inside the window")
    assert totp.matching_step(SECRET, code, None, at=AT) is None


def test_a_code_is_good_only_once() -> None:
    code = code_at_step(STEP)
    used = totp.matching_step(SECRET, code, None, at=AT)
    assert used == STEP
    assert totp.matching_step(SECRET, code, used, at=AT) is None
    assert totp.is_replay(SECRET, code, used, at=AT)


def test_an_older_code_is_refused_after_a_newer_one() -> None:
    assert totp.matching_step(SECRET, code_at_step(STEP - 1), STEP, at=AT) is None
    assert totp.is_replay(SECRET, code_at_step(STEP - 1), STEP, at=AT)
    assert totp.matching_step(SECRET, code_at_step(STEP + 1), STEP, at=AT) == STEP + 1


def test_a_wrong_code_is_not_a_replay() -> None:
    valid = {code_at_step(STEP + d) for d in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    assert totp.matching_step(SECRET, wrong, STEP, at=AT) is None
    assert not totp.is_replay(SECRET, wrong, STEP, at=AT)
    assert not totp.is_replay(SECRET, code_at_step(STEP), None, at=AT)


@pytest.mark.parametrize(
    "code",
    ["", "12345", "1234567", "abcdef", "12 34 5", "-12345", "1e5000", "１２３４５", "٣٣٣٣٣٣", "²²²²²²", "\x00" * 6],
)
def test_malformed_codes_are_refused_not_crashed_on(code: str) -> None:
    # Arabic-Indic and superscript digits pass str.isdigit() but are not code digits.
    assert totp.matching_step(SECRET, code, None, at=AT) is None
    assert not totp.is_replay(SECRET, code, STEP, at=AT)


def test_full_width_digits_from_a_chinese_input_method_count() -> None:
    code = code_at_step(STEP)
    full_width = "".join(chr(ord(d) + 0xFEE0) for d in code)
    assert totp.matching_step(SECRET, full_width, None, at=AT) == STEP


def test_spaces_in_a_code_are_ignored() -> None:
    code = code_at_step(STEP)
    assert totp.matching_step(SECRET, f" {code[:3]} {code[3:]} ", None, at=AT) == STEP
