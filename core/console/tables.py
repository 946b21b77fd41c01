"""The console's own tables (a Piccolo app of the core, ``core.console.piccolo_app``).

- ``platform_operator`` / ``operator_session``: the people who run the deployment and their
  sessions on the platform host (``core.console.operator_web``). Operators are not tenant users:
  they have no tenant and never sign in on a tenant's host.
- ``tenant_asset``: small per-tenant files served on every page (the favicon); kept out of the
  ``tenant`` row so the in-memory tenant directory never holds image bytes.
- ``domain_check``: the last DNS check of each custom domain (what the operator view shows).
"""

from __future__ import annotations

from piccolo.columns import UUID, Boolean, Bytea, ForeignKey, Integer, OnDelete, Text, Timestamptz, Varchar
from piccolo.table import Table

from core.tables import Tenant


class PlatformOperator(Table, tablename="platform_operator"):
    """A platform operator account (created with ``portal operators create``)."""

    id = UUID(primary_key=True)
    email = Varchar(length=320, unique=True)
    name = Varchar(length=200, default="")
    password_hash = Varchar(length=255)
    disabled = Boolean(default=False)
    created_at = Timestamptz()
    last_login_at = Timestamptz(null=True, default=None)
    totp_secret = Text(null=True, default=None)  # encrypted with the platform key (SecretBox)
    totp_last_step = Integer(default=0)  # a code's time step is accepted once (no replay)


class OperatorSession(Table, tablename="operator_session"):
    """A signed-in operator on the platform host (the cookie holds a token; only its hash is stored)."""

    id = UUID(primary_key=True)
    key_hash = Varchar(length=64, unique=True)
    operator = ForeignKey(references=PlatformOperator, on_delete=OnDelete.cascade, index=True)
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)
    ip = Varchar(length=64, default="")


class TenantAsset(Table, tablename="tenant_asset"):
    """A small file of a tenant served on every page (``kind``: ``favicon``)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    kind = Varchar(length=32)
    content_type = Varchar(length=100)
    data = Bytea()
    updated_at = Timestamptz()


class DomainCheck(Table, tablename="domain_check"):
    """The last DNS verification of one hostname: when, and what was found."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    hostname = Varchar(length=253, unique=True)
    checked_at = Timestamptz()
    ownership = Boolean(default=False)
    routing = Boolean(null=True, default=None)
    detail = Text(default="")


CONSOLE_TABLES = [PlatformOperator, OperatorSession, TenantAsset, DomainCheck]
