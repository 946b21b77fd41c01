"""The team plugin's one table: invitations.

Members themselves are core ``Membership`` rows (the plugin never alters core
tables). An invitation stores only the SHA-256 of its token; the token itself
exists in the email alone. At most one *open* invitation (not accepted, not
revoked) per organization and email, enforced by a partial unique index created
in the second migration.
"""

from __future__ import annotations

from piccolo.columns import UUID, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.table import Table

from core.tables import Organization, Tenant, User


class Invitation(Table, tablename="team_invitation"):
    """An invitation to join an organization with a role, sent by email."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, index=True)
    email = Varchar(length=320)
    role = Varchar(length=20)
    token_hash = Varchar(length=64, unique=True)
    invited_by = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True, default=None)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    last_sent_at = Timestamptz()
    send_count = Integer(default=1)
    accepted_at = Timestamptz(null=True, default=None)
    accepted_by = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)
