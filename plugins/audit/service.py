"""Recording events: redact secrets, chain the row to the tenant's head, insert it in the caller's transaction.

``record(event)`` runs inside the transaction of the change it records (``core.events.emit`` is called
inside ``core.db.atomic()``); it opens none of its own unless called outside one, so a rollback of the
change removes the row and a failed insert fails the change. Writers of one tenant are serialized so the
chain never forks: PostgreSQL takes a transaction-scoped advisory lock per tenant; SQLite's IMMEDIATE
transaction already holds the database's only write lock. The unique key on ``(tenant, seq)`` is the
backstop: a fork could only ever fail, never commit.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from core.db import atomic, is_sqlite, new_id, utcnow
from plugins.audit.tables import AuditEvent

REDACTED = "[redacted]"
GENESIS = ""
"""``prev_hash`` of a tenant's first row."""
CHECKPOINT_ACTION = "audit.log.pruned"

SENSITIVE_WORDS = frozenset({
    "password", "passwd", "passphrase", "secret", "token", "key", "apikey", "totp", "otp", "mfa", "recovery",
    "seed", "credential", "credentials", "private", "signature", "cookie", "session", "authorization", "pin",
    "cvc", "cvv", "iban",
})
"""A field whose name contains one of these words holds a secret, e.g. ``client_secret``, ``totpSeed``."""
SAFE_LAST_WORDS = frozenset({"id", "ids", "prefix", "name", "count", "at", "enabled", "hint", "last4", "type",
                             "set", "required", "expires", "label", "scopes", "status", "method"})
"""...unless it only describes the secret: ``key_prefix``, ``totp_enabled``, ``password_changed_at``."""

COLUMNS = ("id", "tenant", "organization", "seq", "time", "action", "outcome", "actor_type", "actor_id",
           "actor_display", "actor_auth_method", "target_type", "target_id", "target_display", "before", "after",
           "data", "ip", "user_agent", "request_id", "prev_hash", "hash")
HASHED = tuple(c for c in COLUMNS if c != "hash")


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^a-zA-Z0-9]+", spaced.lower()) if w]


def is_sensitive(name: str) -> bool:
    """Whether a field name looks like it holds a secret (see ``SENSITIVE_WORDS``)."""
    words = _words(str(name))
    if not words or words[-1] in SAFE_LAST_WORDS:
        return False
    return any(w in SENSITIVE_WORDS for w in words)


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys, at any depth; ``None`` stays ``None`` (unset is no secret)."""
    if isinstance(value, dict):
        return {k: (REDACTED if v is not None and is_sensitive(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date | uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def canonical(value: Any) -> str:
    """The one JSON spelling of a value: sorted keys, no spaces, UTF-8; what is stored is what is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def json_text(value: Any) -> str | None:
    """A JSON column's stored text (``None`` stays SQL NULL)."""
    return None if value is None else canonical(value)


def time_text(value: datetime) -> str:
    """Times are hashed as UTC ISO 8601 with microseconds (the precision both databases keep)."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def row_hash(row: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of a row's content, including the previous row's hash."""
    import hashlib

    content = {}
    for column in HASHED:
        value = row[column]
        if column == "time":
            value = time_text(value)
        elif column in ("id", "tenant", "organization") and value is not None:
            value = str(value)
        content[column] = value
    return hashlib.sha256(canonical(content).encode()).hexdigest()


@dataclass(frozen=True)
class Head:
    """The newest row of a tenant's chain: what ``portal audit head`` exports as ``seq:hash``."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


async def lock_tenant(tenant_id: uuid.UUID) -> None:
    """Serialize writers of one tenant's chain until the transaction ends (PostgreSQL; SQLite already is)."""
    if not is_sqlite():
        await AuditEvent.raw("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))", f"portal.audit:{tenant_id}")


async def current_head(tenant_id: uuid.UUID) -> Head | None:
    """The tenant's newest row (``None`` before its first event)."""
    rows = await AuditEvent.raw(
        "SELECT seq, hash FROM audit_event WHERE tenant = {} ORDER BY seq DESC LIMIT 1", tenant_id)
    return Head(int(rows[0]["seq"]), rows[0]["hash"]) if rows else None


async def insert_row(row: dict[str, Any]) -> None:
    """One INSERT; raising here fails the caller's change (that is the point)."""
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    placeholders = ", ".join("{}" for _ in COLUMNS)
    await AuditEvent.raw(f"INSERT INTO audit_event ({columns}) VALUES ({placeholders})",
                         *(row[c] for c in COLUMNS))


def row_from_event(event: Any) -> dict[str, Any]:
    """The columns of an event's row, before it is placed in the chain (no seq or hashes yet)."""
    actor, target = event.actor, event.target
    before = redact(event.before) if event.before is not None else None
    after = redact(event.after) if event.after is not None else None
    return {
        "id": event.id, "tenant": event.tenant_id, "organization": event.organization_id,
        "time": event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC),
        "action": event.type[:150], "outcome": (event.outcome or "success")[:20],
        "actor_type": (actor.type if actor else "system")[:20],
        "actor_id": str(actor.id)[:100] if actor and actor.id is not None else None,
        "actor_display": (actor.display if actor else "System")[:320],
        "actor_auth_method": actor.auth_method if actor else None,
        "target_type": target.type[:60] if target else None,
        "target_id": str(target.id)[:200] if target and target.id is not None else None,
        "target_display": (target.display or "")[:500] if target else "",
        "before": json_text(before), "after": json_text(after), "data": canonical(redact(event.data or {})),
        "ip": (event.ip or "")[:64], "user_agent": (event.user_agent or "")[:500],
        "request_id": (event.request_id or "")[:64],
    }


async def append(row: dict[str, Any], *, after: Head | None = None) -> dict[str, Any]:
    """Place a row at the head of its tenant's chain and insert it (joins the caller's transaction).

    ``after``: the head to link to when the caller already holds the tenant's lock and knows it
    (prune, which may just have deleted the head row itself).
    """
    async with atomic():
        await lock_tenant(row["tenant"])
        head = after or await current_head(row["tenant"])
        row = {**row, "seq": head.seq + 1 if head else 1, "prev_hash": head.hash if head else GENESIS}
        row["hash"] = row_hash(row)
        await insert_row(row)
    return row


async def record(event: Any) -> dict[str, Any]:
    """Write the audit row of one ``core.events.Event``; called from ``portal_event``."""
    return await append(row_from_event(event))


async def record_system(tenant_id: uuid.UUID, action: str, *, data: dict[str, Any],
                        organization_id: uuid.UUID | None = None, display: str = "System",
                        after: Head | None = None) -> dict[str, Any]:
    """A row the audit plugin writes about itself (prune checkpoints), attributed to the system."""
    return await append({
        "id": new_id(), "tenant": tenant_id, "organization": organization_id, "time": utcnow(),
        "action": action, "outcome": "success", "actor_type": "system", "actor_id": None, "actor_display": display,
        "actor_auth_method": None, "target_type": "audit_log", "target_id": str(tenant_id),
        "target_display": "Audit log", "before": None, "after": None, "data": canonical(data), "ip": "",
        "user_agent": "", "request_id": new_id().hex,
    }, after=after)


def decode_row(raw: dict[str, Any]) -> dict[str, Any]:
    """A row as read back (either engine): UTC datetimes, str ids, int seq; JSON columns stay text."""
    from core.db import as_utc

    row = dict(raw)
    for column in ("id", "tenant", "organization"):
        if row.get(column) is not None:
            row[column] = str(row[column])
    row["seq"] = int(row["seq"])
    time = row["time"]
    if isinstance(time, str):
        time = datetime.fromisoformat(time)
    row["time"] = as_utc(time)
    return row
