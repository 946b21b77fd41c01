"""Core tables: tenants and their domains, identity, sessions, outbox, mail, notifications.

Plugins never alter these; they reference them with foreign keys from their own
apps. Every id is a random UUID. Composite unique keys (a user's email per
tenant, a membership per organization) are created in the migration.
"""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    Bytea,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table


class Tenant(Table, tablename="tenant"):
    """A reseller / brand: its own hostnames, theme, branding and enabled plugins."""

    id = UUID(primary_key=True)
    slug = Varchar(length=63, unique=True)
    name = Varchar(length=200)
    theme = Varchar(length=63, default="default")
    status = Varchar(length=20, default="active")
    branding = JSON(default={})
    plugins = JSON(default=None, null=True)
    settings = JSON(default={})
    logo = Bytea(null=True, default=None)
    logo_type = Varchar(length=100, null=True, default=None)
    version = Integer(default=1)
    console_owned = JSON(default=[])
    created_at = Timestamptz()
    updated_at = Timestamptz()


class TenantDomain(Table, tablename="tenant_domain"):
    """A hostname that serves one tenant; exactly one per tenant is primary (used in email links)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    hostname = Varchar(length=253, unique=True)
    is_primary = Boolean(default=False)
    verified = Boolean(default=True)
    source = Varchar(length=20, default="manifest")
    created_at = Timestamptz()


class User(Table, tablename="portal_user"):
    """A person's account inside one tenant: the same email in two tenants is two accounts."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    email = Varchar(length=320)
    name = Varchar(length=200, default="")
    password_hash = Varchar(length=255, null=True, default=None)
    is_tenant_admin = Boolean(default=False)
    locale = Varchar(length=20, null=True, default=None)
    created_at = Timestamptz()
    last_login_at = Timestamptz(null=True, default=None)


class Organization(Table, tablename="organization"):
    """A tenant's customer: the billing entity whose members share sections."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    slug = Varchar(length=63)
    name = Varchar(length=200)
    created_at = Timestamptz()
    require_2fa = Boolean(default=False)


class Membership(Table, tablename="membership"):
    """A user's role in an organization (owner, admin, billing, member, viewer)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, index=True)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    role = Varchar(length=20)
    created_at = Timestamptz()
    last_active_at = Timestamptz(null=True, default=None)


class UserSession(Table, tablename="user_session"):
    """A server-side login session; the cookie holds a random token whose hash is ``key_hash``."""

    id = UUID(primary_key=True)
    key_hash = Varchar(length=64, unique=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    auth_method = Varchar(length=20, default="password")
    created_at = Timestamptz()
    last_seen_at = Timestamptz()
    expires_at = Timestamptz()
    ip = Varchar(length=64, default="")
    user_agent = Varchar(length=500, default="")
    revoked_at = Timestamptz(null=True, default=None)
    second_factor = Varchar(length=20, default="")


class TotpCredential(Table, tablename="totp_credential"):
    """A user's TOTP authenticator; ``secret`` is encrypted (SecretBox); unconfirmed while enrolling."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, unique=True)
    secret = Text()
    confirmed_at = Timestamptz(null=True, default=None)
    last_used_step = Integer(default=0)
    created_at = Timestamptz()


class RecoveryCode(Table, tablename="recovery_code"):
    """A single-use 2FA recovery code; only its hash is kept."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    code_hash = Varchar(length=64)
    created_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class PendingLogin(Table, tablename="pending_login"):
    """A correct password still waiting for its second factor: not a session, short-lived, single use."""

    id = UUID(primary_key=True)
    key_hash = Varchar(length=64, unique=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    next_path = Varchar(length=2000, default="")
    attempts = Integer(default=0)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    consumed_at = Timestamptz(null=True, default=None)


class PasswordReset(Table, tablename="password_reset"):
    """A single-use password reset link (the mail holds the token; only its hash is kept)."""

    id = UUID(primary_key=True)
    key_hash = Varchar(length=64, unique=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    ip = Varchar(length=64, default="")


class OutboxMessage(Table, tablename="outbox"):
    """A side effect that leaves the process, committed with the change that caused it."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=True)
    kind = Varchar(length=100, index=True)
    payload = JSON(default={})
    dedupe_key = Varchar(length=200, unique=True, null=True, default=None)
    status = Varchar(length=20, default="pending", index=True)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz()
    locked_by = Varchar(length=64, null=True, default=None)
    locked_until = Timestamptz(null=True, default=None)
    last_error = Text(default="")
    created_at = Timestamptz()
    sent_at = Timestamptz(null=True, default=None)


class DevMail(Table, tablename="dev_mail"):
    """Mail the development backend 'sent': what ``/_dev/mail`` shows instead of an SMTP server."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=True)
    sender = Varchar(length=400)
    recipient = Varchar(length=400)
    subject = Varchar(length=400)
    text = Text()
    html = Text()
    created_at = Timestamptz()


class Notification(Table, tablename="notification"):
    """An in-app notification: the bell in the header shows the unread count."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, index=True)
    organization = ForeignKey(references=Organization, on_delete=OnDelete.cascade, null=True)
    title = Varchar(length=200)
    body = Text(default="")
    link = Varchar(length=500, default="")
    created_at = Timestamptz()
    read_at = Timestamptz(null=True, default=None)


CORE_TABLES: list[type[Table]] = [
    Tenant, TenantDomain, User, Organization, Membership, UserSession, OutboxMessage, DevMail, Notification,
    TotpCredential, RecoveryCode, PendingLogin, PasswordReset,
]
