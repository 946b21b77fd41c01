"""The API key format, made for secret scanning.

``{prefix}_{environment}_{32 random base62 chars}{6 base62 chars of CRC32}``, e.g.
``pk_live_4eC39HqLyjWDarjtT1zdp7dc0Lu3nTVl9bQ1ZrE``:

- the *prefix* is the tenant's (``tenant.settings["api-keys"]["prefix"]``, default ``pk``), so a
  reseller can register its own pattern with GitHub / GitLab secret scanning;
- the *environment* marker (``live`` / ``test``) tells a reader what the key can touch;
- 32 characters of base62 are 190 bits from ``secrets``;
- the CRC32 checksum lets us (and a scanner) reject a mistyped or made-up key without
  a database lookup. It is not a MAC: it guards against typos and noise, the hash
  lookup guards against forgery.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_CHARS = 32
CHECKSUM_CHARS = 6
DEFAULT_PREFIX = "pk"
ENVIRONMENTS = ("live", "test")
PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9]{1,15}$")
KEY_PATTERN = re.compile(
    r"^(?P<prefix>[a-z][a-z0-9]{1,15})_(?P<env>live|test)_"
    rf"(?P<body>[0-9A-Za-z]{{{RANDOM_CHARS}}})(?P<crc>[0-9A-Za-z]{{{CHECKSUM_CHARS}}})$"
)
MAX_KEY_LENGTH = 16 + 1 + 4 + 1 + RANDOM_CHARS + CHECKSUM_CHARS


@dataclass(frozen=True)
class ParsedKey:
    """A key that is well formed and whose checksum matches (it may still be unknown)."""

    prefix: str
    environment: str

    @property
    def display_prefix(self) -> str:
        """What the list shows before the dots: ``pk_live``."""
        return f"{self.prefix}_{self.environment}"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def checksum(text: str) -> str:
    """Six base62 characters of the CRC32 of ``text`` (62**6 > 2**32, so nothing is lost)."""
    return _base62(zlib.crc32(text.encode()), CHECKSUM_CHARS)


def valid_prefix(prefix: str) -> bool:
    """Lower-case letters and digits, 2-16 long, starting with a letter (so ``_`` stays the separator)."""
    return bool(PREFIX_PATTERN.match(prefix))


def generate_key(prefix: str = DEFAULT_PREFIX, environment: str = "live") -> str:
    """A new plaintext key. Shown once, then only its hash is kept."""
    if not valid_prefix(prefix):
        raise ValueError(f"API key prefix {prefix!r}: use 2-16 lower-case letters or digits, starting with a letter")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"API key environment must be one of {ENVIRONMENTS}")
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    head = f"{prefix}_{environment}_{body}"
    return head + checksum(head)


def parse_key(token: str) -> ParsedKey | None:
    """The key's parts if it is well formed with a matching checksum; ``None`` otherwise (no DB needed)."""
    if len(token) > MAX_KEY_LENGTH:
        return None
    match = KEY_PATTERN.match(token)
    if match is None:
        return None
    head = token[: -CHECKSUM_CHARS]
    if checksum(head) != match["crc"]:
        return None
    return ParsedKey(match["prefix"], match["env"])


def mask(display_prefix: str, last4: str) -> str:
    """How a stored key is listed: prefix and the last four characters, never more."""
    return f"{display_prefix}_…{last4}"
