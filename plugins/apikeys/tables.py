"""Tables of the API keys plugin: the keys (hash only) and their daily request counters."""

from __future__ import annotations

from piccolo.columns import JSON, UUID, Date, ForeignKey, Integer, OnDelete, Timestamptz, Varchar
from piccolo.table import Table

from core.tables import Organization, Tenant, User


class ApiKey(Table, tablename="api_key"):
    """An organization's API key. The plaintext is never stored: ``key_hash`` is its SHA-256.

    A key works while ``revoked_at`` is empty, ``expires_at`` (if any) is ahead and, after a
    rotation, until ``grace_until``.
    """

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, index=True)
    name = Varchar(length=100)
    key_hash = Varchar(length=64, unique=True)
    prefix = Varchar(length=24)
    last4 = Varchar(length=4)
    environment = Varchar(length=10, default="live")
    scopes = JSON(default=[])
    created_by = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True, default=None)
    created_by_name = Varchar(length=320, default="")
    created_at = Timestamptz()
    expires_at = Timestamptz(null=True, default=None)
    last_used_at = Timestamptz(null=True, default=None)
    last_used_ip = Varchar(length=64, default="")
    revoked_at = Timestamptz(null=True, default=None)
    revoked_by_name = Varchar(length=320, default="")
    replaced_by = UUID(null=True, default=None)
    grace_until = Timestamptz(null=True, default=None)
    reminded_at = Timestamptz(null=True, default=None)
    expired_noted_at = Timestamptz(null=True, default=None)


class ApiKeyUsageDay(Table, tablename="api_key_usage_day"):
    """Requests made with one key on one UTC day; flushed in batches from each process's buffer."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade)
    api_key = ForeignKey(references=ApiKey, on_delete=OnDelete.cascade)
    day = Date()
    requests = Integer(default=0)


APIKEYS_TABLES = [ApiKey, ApiKeyUsageDay]
