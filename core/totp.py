"""TOTP two-factor authentication and recovery codes (no HTTP here).

Decisions (issue 3, account security lives in the core because sign-in and sessions do):

- Seeds are 160-bit base32 secrets from ``pyotp``, stored encrypted with the platform key
  (``ctx.runtime.secrets``, a ``SecretBox``); a database dump alone cannot mint codes.
- An authenticator row exists unconfirmed while the user enrols (the QR code shows its seed)
  and counts only once a code from the app confirmed it.
- A code is accepted for the current 30-second step and one step either side (clock drift),
  and only for a step *later* than the last accepted one: the same code, or an older one,
  never works twice. The check-and-set is one conditional ``UPDATE`` so two parallel requests
  with the same code cannot both win.
- Ten recovery codes, shown once, stored as SHA-256 (salted with the user id), each single use.
- Wrong codes are throttled per account (``code_throttle``) on top of the per-login attempt cap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

import pyotp
import segno

from core.db import utcnow
from core.ratelimit import Throttle
from core.runtime import PortalRuntime
from core.tables import RecoveryCode, TotpCredential

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
CODE_ATTEMPTS_PER_WINDOW = 10
CODE_WINDOW_SECONDS = 15 * 60


def new_secret() -> str:
    """A fresh 160-bit base32 TOTP seed."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=account,
                                                                                      issuer_name=issuer)


def qr_svg(uri: str, title: str) -> str:
    """The QR code of ``uri`` as inline SVG (no image request, no third party sees the seed)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2, dark="#111827", light="#ffffff", title=title)


def group_secret(secret: str) -> str:
    """The seed in groups of four for typing it by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def normalize_code(code: str) -> str:
    """What the user typed without spaces, dashes or case."""
    return "".join(ch for ch in code.lower() if ch.isalnum())[:64]


def is_totp_shape(code: str) -> bool:
    """Six digits: an authenticator code (anything else is tried as a recovery code)."""
    return len(code) == DIGITS and code.isdigit()


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code equals ``code`` within ±``DRIFT_STEPS``; ``None`` if none does."""
    if not is_totp_shape(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int((time.time() if now is None else now) // STEP_SECONDS)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def code_throttle(runtime: PortalRuntime) -> Throttle:
    """The app's per-account limiter of wrong second-factor codes (login, disable, new recovery codes)."""
    return runtime.limiter("totp_attempts", CODE_ATTEMPTS_PER_WINDOW, CODE_WINDOW_SECONDS)


def throttle_key(tenant_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """The limiter key of one account."""
    return f"2fa:{tenant_id}:{user_id}"


async def credential(tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The user's authenticator row (confirmed or still enrolling), if any."""
    return await TotpCredential.select().where(
        TotpCredential.tenant == tenant_id, TotpCredential.user == user_id
    ).first()


async def is_enabled(tenant_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Whether signing in as this user needs a second factor."""
    return await TotpCredential.exists().where(
        TotpCredential.tenant == tenant_id, TotpCredential.user == user_id, TotpCredential.confirmed_at.is_not_null()
    )


async def enrolment_secret(runtime: PortalRuntime, tenant_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """The seed being enrolled: the pending one (so a reload shows the same QR code) or a new one."""
    row = await credential(tenant_id, user_id)
    if row is not None and row["confirmed_at"] is None:
        try:
            return runtime.secrets.decrypt(row["secret"])
        except ValueError:
            await TotpCredential.delete().where(TotpCredential.id == row["id"])
    elif row is not None:
        raise ValueError("two-factor authentication is already on")
    secret = new_secret()
    await TotpCredential.insert(TotpCredential(
        id=uuid.uuid4(), tenant=tenant_id, user=user_id, secret=runtime.secrets.encrypt(secret),
        confirmed_at=None, last_used_step=0, created_at=utcnow(),
    ))
    return secret


async def accept_totp(runtime: PortalRuntime, tenant_id: uuid.UUID, user_id: uuid.UUID, code: str, *,
                      confirmed: bool = True) -> bool:
    """Check an authenticator code and burn its time step (a code is accepted once)."""
    row = await credential(tenant_id, user_id)
    if row is None or (row["confirmed_at"] is not None) != confirmed:
        return False
    try:
        secret = runtime.secrets.decrypt(row["secret"])
    except ValueError:
        return False
    step = matching_step(secret, normalize_code(code))
    if step is None or step <= row["last_used_step"]:
        return False
    won = await TotpCredential.update({TotpCredential.last_used_step: step}).where(
        TotpCredential.id == row["id"], TotpCredential.last_used_step < step
    ).returning(TotpCredential.id)
    return bool(won)


def _recovery_hash(user_id: uuid.UUID, code: str) -> str:
    return hashlib.sha256(f"portal-recovery:{user_id}:{normalize_code(code)}".encode()).hexdigest()


def new_recovery_code() -> str:
    """A recovery code like ``k7m2p-x9qhd`` (about 50 bits, easy to read aloud)."""
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


async def replace_recovery_codes(tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[str]:
    """Issue a new set of recovery codes (the old ones die); the plain codes are returned once."""
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    now = utcnow()
    await RecoveryCode.delete().where(RecoveryCode.tenant == tenant_id, RecoveryCode.user == user_id)
    await RecoveryCode.insert(*[
        RecoveryCode(id=uuid.uuid4(), tenant=tenant_id, user=user_id, code_hash=_recovery_hash(user_id, code),
                     created_at=now, used_at=None)
        for code in codes
    ])
    return codes


async def use_recovery_code(tenant_id: uuid.UUID, user_id: uuid.UUID, code: str) -> bool:
    """Spend a recovery code; False if it is unknown or already used."""
    if len(normalize_code(code)) != 10:
        return False
    used = await RecoveryCode.update({RecoveryCode.used_at: utcnow()}).where(
        RecoveryCode.tenant == tenant_id, RecoveryCode.user == user_id,
        RecoveryCode.code_hash == _recovery_hash(user_id, code), RecoveryCode.used_at.is_null(),
    ).returning(RecoveryCode.id)
    return bool(used)


async def remaining_recovery_codes(tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """How many unused recovery codes the user still has."""
    return await RecoveryCode.count().where(
        RecoveryCode.tenant == tenant_id, RecoveryCode.user == user_id, RecoveryCode.used_at.is_null()
    )


async def verify_second_factor(runtime: PortalRuntime, tenant_id: uuid.UUID, user_id: uuid.UUID,
                               code: str) -> str | None:
    """``"totp"`` or ``"recovery"`` when ``code`` is a valid, unused second factor; ``None`` otherwise."""
    normalized = normalize_code(code)
    if is_totp_shape(normalized):
        return "totp" if await accept_totp(runtime, tenant_id, user_id, normalized) else None
    return "recovery" if await use_recovery_code(tenant_id, user_id, normalized) else None


async def disable(tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Forget the authenticator and every recovery code."""
    await TotpCredential.delete().where(TotpCredential.tenant == tenant_id, TotpCredential.user == user_id)
    await RecoveryCode.delete().where(RecoveryCode.tenant == tenant_id, RecoveryCode.user == user_id)


async def confirm(tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Mark the enrolling authenticator confirmed (call after ``accept_totp(..., confirmed=False)``)."""
    await TotpCredential.update({TotpCredential.confirmed_at: utcnow()}).where(
        TotpCredential.tenant == tenant_id, TotpCredential.user == user_id, TotpCredential.confirmed_at.is_null()
    )
