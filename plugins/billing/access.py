"""Who may read and manage billing.

``billing.read``: owner, admin, billing, viewer. ``billing.manage``: owner and billing;
admins too when the tenant sets ``[settings.billing] allow_admin_manage = true``. The
tenant's choice is applied per request by the billing guards (and the dashboard card),
so the buttons a template shows and the checks a route makes stay the same.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from core.context import RequestContext
from core.guards import context_of, requires
from plugins.billing.plans import billing_config

READ_ROLES = ("owner", "admin", "billing", "viewer")
MANAGE_ROLES = ("owner", "billing")


def apply_tenant_choice(ctx: RequestContext) -> None:
    """Grant ``billing.manage`` to admins on tenants that allow it."""
    if (ctx.role == "admin" and "billing.read" in ctx.permissions and "billing.manage" not in ctx.permissions
            and billing_config(ctx.tenant).allow_admin_manage):
        ctx.permissions = ctx.permissions | {"billing.manage"}


def billing_guard(permission: str) -> Any:
    """``requires(permission)`` after applying the tenant's admin choice."""
    inner = requires(permission)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        ctx = context_of(connection)
        apply_tenant_choice(ctx)
        await inner(connection, handler)

    guard.__name__ = f"billing_{permission.replace('.', '_')}"
    return guard
