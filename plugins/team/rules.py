"""Pure rules of the team: role ranks, who may grant what, and reading a list of emails.

No database and no HTTP here, so the rules are the same for the pages, the
service functions and the tests. ``core.contracts.ROLES`` is ordered highest
first, so a lower index means a higher role.
"""

from __future__ import annotations

import re

from core.contracts import ROLES

ROLE_LABELS = {
    "owner": "Owner", "admin": "Admin", "billing": "Billing", "member": "Member", "viewer": "Viewer",
}
ROLE_HINTS = {
    "owner": "Everything, including transferring ownership.",
    "admin": "Runs the team and every section, except ownership.",
    "billing": "Invoices, payment method and billing details.",
    "member": "Uses the product's sections.",
    "viewer": "Can look, cannot change anything.",
}
MAX_INVITES_PER_REQUEST = 50
EMAIL_SHAPE = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+\.[^@\s,;<>\"'.]{2,}$")


class TeamError(Exception):
    """A refused team change, with the words the person sees and the HTTP status of the page."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


def rank(role: str) -> int:
    """Position of a role, 0 for the highest (owner); unknown roles rank below every real one."""
    return ROLES.index(role) if role in ROLES else len(ROLES)


def can_grant(actor_role: str | None, role: str) -> bool:
    """Nobody grants a role above their own (an owner may make another owner)."""
    return actor_role in ROLES and role in ROLES and rank(role) >= rank(actor_role or "")


def can_manage_member(actor_role: str | None, target_role: str) -> bool:
    """A member ranked above you is out of your reach (an admin cannot demote or remove an owner)."""
    return actor_role in ROLES and rank(target_role) >= rank(actor_role or "")


def assignable_roles(actor_role: str | None) -> list[str]:
    """The roles someone with ``actor_role`` may hand out, highest first."""
    return [role for role in ROLES if can_grant(actor_role, role)]


def parse_emails(raw: str) -> tuple[list[str], list[str]]:
    """Split what was typed or pasted (commas, semicolons, spaces, new lines) into valid and invalid addresses.

    ``Jane <jane@example.com>`` is accepted as ``jane@example.com``; duplicates are dropped, the
    order is kept, emails are lower-cased (emails compare case-insensitively in the portal).
    """
    valid: list[str] = []
    invalid: list[str] = []
    for chunk in re.split(r"[,;\n]+", raw):
        angled = re.findall(r"<([^<>]*)>", chunk)
        for part in angled or chunk.split():
            candidate = part.strip().lower()
            if not candidate:
                continue
            bucket = valid if len(candidate) <= 320 and EMAIL_SHAPE.match(candidate) else invalid
            if candidate not in bucket:
                bucket.append(candidate)
    return valid, invalid
