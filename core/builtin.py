"""The core's own section, registered through the same hooks as every plugin.

Contributes the "Overview" navigation entry and the organization card of the
overview page.
"""

from __future__ import annotations

from core import __version__, hookimpl
from core.context import RequestContext
from core.contracts import DashboardCard, NavItem, Permission, PluginInfo
from core.tables import Membership


@hookimpl
def portal_plugin() -> PluginInfo:
    """The core is plugin ``core``: always enabled, never listed as optional."""
    return PluginInfo("core", "Overview", __version__, "Organization overview, account and sign-in.")


@hookimpl
def portal_permissions() -> list[Permission]:
    """Seeing the overview is every member's right."""
    return [Permission("organization.view", "See the organization overview", default_roles=(
        "owner", "admin", "billing", "member", "viewer"))]


@hookimpl
def portal_nav_items(ctx: RequestContext) -> list[NavItem]:
    """First entry of every organization's navigation."""
    return [NavItem("Overview", "/o/{org}/", "organization.view", order=0, icon="home")]


@hookimpl
async def portal_dashboard_cards(ctx: RequestContext) -> list[DashboardCard]:
    """Who you are here: your role and how many people share the organization."""
    assert ctx.organization is not None
    members = await Membership.count().where(Membership.organization == ctx.organization.id)
    return [DashboardCard(
        title="Your organization", value=ctx.organization.name,
        description=f"You are {ctx.role} · {members} member{'s' * (members != 1)}", order=0,
    )]
