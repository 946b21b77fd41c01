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
- a banner "Support view — read only" injected at the top of every HTML page (whatever
  template or theme rendered it), with the organization, the end time and a way out.

Signing out, losing tenant-admin rights or the time running out ends it; leaving it
records ``console.support_view.closed``. An admin who is also a member of that
organization is read-only there too while the support view lasts.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from html import escape
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import PermissionDeniedException
from litestar.types import Message, Send

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


async def enter(ctx: RequestContext, scope: Any, cookie: str | None, send: Send) -> Send:
    """Called by the middleware: switch ``/o/{org}`` requests into the support view when the cookie allows.

    Returns the ``send`` to use (the banner-injecting one in support view). Raises the 403 for unsafe methods.
    """
    slug = (scope.get("path_params") or {}).get("org")
    token = read(ctx, cookie)
    if token is None or not slug:
        return send
    org_id, expires = token
    row = await Organization.select(Organization.id, Organization.slug, Organization.name).where(
        Organization.id == org_id, Organization.tenant == ctx.tenant.id).first()
    if row is None or row["slug"] != slug:
        return send
    if scope.get("method", "GET").upper() not in SAFE_METHODS:
        raise PermissionDeniedException(READ_ONLY)
    ctx.organization = CurrentOrganization(row["id"], row["slug"], row["name"])
    ctx.role = "viewer"
    ctx.permissions = read_permissions(ctx)
    ctx.cache["support_view"] = {"org": row["slug"], "expires": expires}
    return _banner_send(send, scope, banner(row["name"], expires))


def banner(org_name: str, expires: int) -> bytes:
    """The strip shown on top of every page in support view."""
    until = time.strftime("%H:%M", time.gmtime(expires))
    return (
        '<div class="support-banner" role="status" data-testid="support-banner" style="position:sticky;top:0;'
        'z-index:1000;display:flex;gap:1rem;align-items:center;justify-content:center;flex-wrap:wrap;'
        'padding:.55rem 1rem;background:#7c2d12;color:#fff;font:600 .9rem/1.3 system-ui,sans-serif">'
        f'<span>Support view — read only</span><span style="font-weight:400">{escape(org_name)} · '
        f'ends {until} UTC · every opening is recorded in the audit log</span>'
        '<form method="post" action="/admin/support/end" style="margin:0">'
        '<input type="hidden" name="_csrf_token" value="__CSRF__">'
        '<button type="submit" style="background:#fff;color:#7c2d12;border:0;border-radius:4px;'
        'padding:.2rem .7rem;font-weight:600;cursor:pointer">Leave support view</button></form></div>'
    ).encode()


def _banner_send(send: Send, scope: Any, strip: bytes) -> Send:
    """Wrap ``send``: HTML responses get ``strip`` right after ``<body ...>`` (Content-Length fixed)."""
    held: dict[str, Any] = {"start": None, "chunks": []}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableScopeHeaders.from_message(message)
            if (headers.get("content-type") or "").startswith("text/html"):
                held["start"] = message
                return
        elif message["type"] == "http.response.body" and held["start"] is not None:
            held["chunks"].append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(held["chunks"])
            at = body.find(b"<body")
            end = body.find(b">", at) if at >= 0 else -1
            if end >= 0:
                from litestar.utils.scope.state import ScopeState

                token = ScopeState.from_scope(scope).csrf_token
                strip_html = strip.replace(b"__CSRF__", escape(token if isinstance(token, str) else "").encode())
                body = body[: end + 1] + strip_html + body[end + 1:]
            start = held["start"]
            headers = MutableScopeHeaders.from_message(start)
            if "content-length" in headers:
                headers["content-length"] = str(len(body))
            held["start"] = None
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return wrapped
