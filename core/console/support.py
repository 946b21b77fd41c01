"""Support view: a tenant admin sees one organization's portal pages as a read-only viewer.

Opened from Customers (a CSRF-protected POST): the console records
``console.support_view.opened`` (who, which organization, until when) and sets a
signed cookie bound to the tenant, the organization, the admin and the admin's
session, valid for ``SUPPORT_MINUTES``. While it is valid, requests to
``/o/{that org}/...`` (``PortalContextMiddleware`` calls ``enter``) get:

- the organization and only its *read* permissions (``*.read`` / ``*.view``): pages show
  what a viewer sees, and management actions are neither shown nor allowed;
- a 403 with a clear message for every unsafe method (POST, PUT, PATCH, DELETE), before
  any handler runs, so no write path is reachable whatever a page offers;
- a banner "Support view — read only" at the top of every page (``base.html`` shows
  ``partials/support_banner.html``), with the organization, the end time and a way out.

Signing out, losing tenant-admin rights or the time running out ends it; leaving it
records ``console.support_view.closed``. An admin who is also a member of that
organization is read-only there too while the support view lasts.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

from litestar.exceptions import PermissionDeniedException

from core.context import CurrentOrganization, RequestContext
from core.tables import Organization

COOKIE = "portal_support"
SUPPORT_MINUTES = 30
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READ_ONLY = ("Support view is read only: you can look at this organization's pages but not change anything. "
             "Leave the support view to work in your own organizations again.")


def _mac(secret: str, tenant_id: uuid.UUID, org_id: uuid.UUID, user_id: uuid.UUID, session_id: Any,
         expires: int) -> str:
    message = f"support:{tenant_id}:{org_id}:{user_id}:{session_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def issue(ctx: RequestContext, org_id: uuid.UUID, now: float | None = None) -> tuple[str, int]:
    """A cookie value for ``org_id`` bound to this admin and session; returns ``(value, expires_epoch)``."""
    assert ctx.user is not None
    expires = int((now or time.time()) + SUPPORT_MINUTES * 60)
    mac = _mac(ctx.runtime.settings.secret_key, ctx.tenant.id, org_id, ctx.user.id, ctx.session_id, expires)
    return f"{org_id}.{expires}.{mac}", expires


def read(ctx: RequestContext, value: str | None) -> tuple[uuid.UUID, int] | None:
    """``(org_id, expires)`` of a valid, unexpired cookie of this admin's session, else None."""
    if not value or ctx.user is None or not ctx.user.is_tenant_admin or len(value) > 200:
        return None
    try:
        raw_org, raw_expires, mac = value.split(".")
        org_id, expires = uuid.UUID(raw_org), int(raw_expires)
    except ValueError:
        return None
    expected = _mac(ctx.runtime.settings.secret_key, ctx.tenant.id, org_id, ctx.user.id, ctx.session_id, expires)
    if not hmac.compare_digest(mac, expected) or expires <= time.time():
        return None
    return org_id, expires


def read_permissions(ctx: RequestContext) -> frozenset[str]:
    """What a support viewer may see: every enabled section's read permissions, nothing that changes data."""
    return frozenset(p.name for p in ctx.runtime.tenant_permissions(ctx.tenant)
                     if p.name.endswith((".read", ".view")))


async def enter(ctx: RequestContext, scope: Any, cookie: str | None) -> None:
    """Called by the middleware: switch ``/o/{org}`` requests into the support view when the cookie allows.

    Sets ``ctx.cache["support_view"]``, which the base template shows as the banner. Raises the 403 for
    unsafe methods.
    """
    slug = (scope.get("path_params") or {}).get("org")
    token = read(ctx, cookie)
    if token is None or not slug:
        return
    org_id, expires = token
    row = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
        Organization.id == org_id, Organization.tenant == ctx.tenant.id).first()
    if row is None or row["slug"] != slug:
        return
    if scope.get("method", "GET").upper() not in SAFE_METHODS:
        raise PermissionDeniedException(READ_ONLY)
    ctx.organization = CurrentOrganization(row["id"], row["slug"], row["name"])
    ctx.role = "viewer"
    ctx.permissions = read_permissions(ctx)
    ctx.cache["support_view"] = {"org": row["slug"], "org_name": row["name"], "expires": expires,
                                 "ends": time.strftime("%H:%M", time.gmtime(expires))}
