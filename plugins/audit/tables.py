"""The audit log table: one append-only row per domain event, chained by hash per tenant.

Decisions:
- ``tenant`` and ``organization`` are plain UUID columns, not foreign keys: the record of
  what happened must outlive what it describes (deleting an organization must neither
  cascade into nor be blocked by its history). Retention is the only way rows leave.
- ``seq`` numbers a tenant's rows 1, 2, 3, ... without gaps; ``prev_hash``/``hash`` chain them.
  ``seq`` is also the viewer's cursor (keyset pagination on ``(tenant, seq)``).
- JSON columns hold the exact canonical text that was hashed, so verification never depends
  on how a database normalises JSON.
"""

from __future__ import annotations

from piccolo.columns import JSON, UUID, BigInt, Timestamptz, Varchar
from piccolo.table import Table


class AuditEvent(Table, tablename="audit_event"):
    """Who did what to which target, when, from where, and the fields that changed."""

    id = UUID(primary_key=True)
    tenant = UUID()
    organization = UUID(null=True, default=None)
    seq = BigInt()
    time = Timestamptz()
    action = Varchar(length=150)
    outcome = Varchar(length=20, default="success")
    actor_type = Varchar(length=20)
    actor_id = Varchar(length=100, null=True, default=None)
    actor_display = Varchar(length=320, default="")
    actor_auth_method = Varchar(length=30, null=True, default=None)
    target_type = Varchar(length=60, null=True, default=None)
    target_id = Varchar(length=200, null=True, default=None)
    target_display = Varchar(length=500, default="")
    before = JSON(null=True, default=None)
    after = JSON(null=True, default=None)
    data = JSON(default={})
    ip = Varchar(length=64, default="")
    user_agent = Varchar(length=500, default="")
    request_id = Varchar(length=64, default="")
    prev_hash = Varchar(length=64, default="")
    hash = Varchar(length=64)


AUDIT_TABLES: list[type[Table]] = [AuditEvent]
