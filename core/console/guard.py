"""Who may use the tenant console: signed-in users flagged ``is_tenant_admin`` on this tenant.

Tenant admin is a property of the user account (``core.tables.User.is_tenant_admin``),
distinct from organization roles: an organization owner is *not* a tenant admin.
Anonymous visitors are sent to the login form; signed-in users without the flag get
the themed 403 page. We answer 403 rather than 404 on purpose: ``/admin`` exists on
every white-label portal, so hiding it reveals nothing, and a clear "not for your
account" message saves a support ticket. The user was loaded for this Host's tenant
only, so one tenant's admin can never pass on another tenant's hosts.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers import BaseRouteHandler

from core.guards import LoginRequired, context_of

REFUSAL = ("The console is for administrators of this portal. Your account can use the portal, "
           "but not change its branding, domains, sections or plans.")


async def tenant_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Pass only tenant admins of the request's tenant (login redirect for anonymous, 403 otherwise)."""
    ctx = context_of(connection)
    if ctx.user is None:
        raise LoginRequired()
    if not ctx.user.is_tenant_admin:
        raise PermissionDeniedException(REFUSAL)
