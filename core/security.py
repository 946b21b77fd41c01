"""Passwords, secrets at rest and throttles.

argon2id through ``argon2-cffi``; the cheap profile exists only for tests and is
refused in production by the settings. Secrets stored in the database are
encrypted with a Fernet key derived from ``PORTAL_SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.fernet import Fernet, InvalidToken

_HASHERS = {
    "production": PasswordHasher(),
    "test": PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
}


class Passwords:
    """Hash and verify passwords with the profile the settings chose."""

    def __init__(self, profile: str) -> None:
        self.hasher = _HASHERS[profile]
        self._dummy = self.hasher.hash("not-a-password")

    def hash(self, password: str) -> str:
        """An argon2id hash to store."""
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Check a password; an unknown user costs the same time as a wrong password."""
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """True when the stored hash used weaker parameters than the current profile."""
        return self.hasher.check_needs_rehash(stored)


MIN_PASSWORD_LENGTH = 10


def password_problem(password: str, email: str = "") -> str | None:
    """Why a new password is refused, in words for the user; ``None`` when it is fine."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 512:
        return "Use at most 512 characters."
    if email and password.lower() == email.lower():
        return "Your password cannot be your email address."
    return None


class SecretBox:
    """Encrypts secrets stored in the database (Stripe keys, SSO client secrets, TOTP seeds)."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(("portal-secretbox:" + secret_key).encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext safe to store in a text column."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext; raises ``ValueError`` if the key changed or the value was tampered with."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise ValueError("stored secret cannot be decrypted with PORTAL_SECRET_KEY") from None


def token_hash(token: str) -> str:
    """The hash stored for a bearer token (session, invitation, API key): SHA-256 hex."""
    return hashlib.sha256(token.encode()).hexdigest()
