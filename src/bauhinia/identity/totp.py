"""Time-based one-time passwords (RFC 6238) whose codes are good only once."""

from __future__ import annotations

import hmac
import time

import pyotp

from bauhinia.core.i18n import fold_fullwidth

INTERVAL = 30
DIGITS = 6
DRIFT_STEPS = 1  # accept the previous and next 30-second step for clock drift


def new_secret() -> str:
    return pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends


def provisioning_uri(secret: str, account: str, issuer: str = "Bauhinia") -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(name=account, issuer_name=issuer)


def current_code(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).at(at if at is not None else time.time())


def _clean(code: str) -> str | None:
    """Six ASCII digits, or None (str.isdigit() also accepts superscript and other scripts' digits).

    Full-width digits, as a Chinese input method types them, are folded to ASCII first.
    """
    code = fold_fullwidth(code).strip().replace(" ", "")
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else None


def matching_step(secret: str, code: str, last_step: int | None, at: float | None = None) -> int | None:
    """The time step the code belongs to, if it is valid and newer than the last one used.

    Returns None for a wrong code and for a replay (a step at or before ``last_step``).
    """
    cleaned = _clean(code)
    if cleaned is None:
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    now_step = int((at if at is not None else time.time()) // INTERVAL)
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), cleaned):
            return step if last_step is None or step > last_step else None
    return None


def is_replay(secret: str, code: str, last_step: int | None, at: float | None = None) -> bool:
    """The code is right but its step was already used: worth a specific message and an audit event."""
    cleaned = _clean(code)
    if last_step is None or cleaned is None:
        return False
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    now_step = int((at if at is not None else time.time()) // INTERVAL)
    return any(
        hmac.compare_digest(totp.generate_otp(step), cleaned) and step <= last_step
        for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1)
    )
