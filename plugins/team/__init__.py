"""Team: members, invitations, roles and ownership of an organization (slug ``team``).

This module only lists the hook implementations; the work happens in
``routes`` (HTTP), ``service`` / ``invitations`` (changes), ``queries`` (reads)
and ``rules`` (who may do what).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import hookimpl
from core.context import RequestContext
from core.contracts import DashboardCard, NavItem, Permission, PluginInfo, PluginRoutes, UsageMetric

HERE = Path(__file__).parent


@hookimpl
def portal_plugin() -> PluginInfo:
    """Who the plugin is."""
    return PluginInfo("team", "Team", "1.0.0", "Members, invitations, roles and ownership transfer.")


@hookimpl
def portal_permissions() -> list[Permission]:
    """Everyone in the organization sees the team; owners and admins run it."""
    return [
        Permission("team.read", "See the organization's members", ("owner", "admin", "billing", "member", "viewer")),
        Permission("team.manage", "Invite, change roles of and remove members", ("owner", "admin")),
    ]


@hookimpl
def portal_piccolo_apps() -> list[str]:
    """The invitations table and its migrations."""
    return ["plugins.team.piccolo_app"]


@hookimpl
def portal_routes() -> PluginRoutes:
    """Pages under ``/o/{org}/team``; the invitation link ``/invite/{token}`` at the host root."""
    from plugins.team.routes import PAGES, PUBLIC

    return PluginRoutes(pages=PAGES, public=PUBLIC)


@hookimpl
def portal_template_dirs() -> list[Path]:
    """``templates/team/...`` pages and the ``mail/team_invitation`` mail."""
    return [HERE / "templates"]


@hookimpl
def portal_static_dirs() -> list[Path]:
    """Vendored htmx and the small script that makes row updates optimistic (``/static/plugins/team/``)."""
    return [HERE / "static"]


@hookimpl
def portal_nav_items(ctx: RequestContext) -> list[NavItem]:
    """"Team" in every organization's navigation."""
    return [NavItem("Team", "/o/{org}/team", "team.read", order=20, icon="users")]


@hookimpl
async def portal_dashboard_cards(ctx: RequestContext) -> list[DashboardCard]:
    """Members and pending invitations at a glance on the overview."""
    from plugins.team.queries import member_count, pending_count

    assert ctx.organization is not None
    members = await member_count(ctx.tenant.id, ctx.organization.id)
    pending = await pending_count(ctx.tenant.id, ctx.organization.id)
    return [DashboardCard(
        title="Team", value=f"{members} member{'s' * (members != 1)}",
        description=f"{pending} pending invitation{'s' * (pending != 1)}",
        link=ctx.org_url("team"), link_label="Manage team" if ctx.can("team.manage") else "See members",
        permission="team.read", order=20,
    )]


@hookimpl
async def portal_usage_metrics(ctx: RequestContext, org: Any) -> list[UsageMetric]:
    """Seats: members plus pending invitations, against the plan's limit (what inviting is checked against)."""
    from plugins.team.queries import seat_status

    seats = await seat_status(ctx, org)
    return [UsageMetric("seats", "Seats", used=seats.used, limit=seats.limit,
                        unit="seats")]


@hookimpl
async def portal_plan_change_allowed(ctx: RequestContext, org: Any, current_plan: Any, new_plan: Any) -> str | None:
    """Refuse a plan with fewer seats than the organization has members (they would be over the limit at once)."""
    from plugins.team.plan_policy import refuse_if_too_small

    return await refuse_if_too_small(ctx, org, new_plan)


@hookimpl
async def portal_seed_demo(ctx: RequestContext, org: Any) -> None:
    """A few extra members (some signing in with SSO) and pending invitations; adds nothing the second time."""
    from plugins.team.demo import seed

    await seed(ctx, org)
