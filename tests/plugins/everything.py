"""A throwaway plugin implementing every hook, the way a partner would write one.

Each hook records that it was called in ``CALLS`` so the tests can prove every
hook of ``core/hookspecs.py`` is reached; a test fails when a hook is added to
the contract and not here.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from litestar import Response, get

from core import hookimpl
from core.context import Actor, ApiPrincipal, Ctx, CurrentOrganization
from core.contracts import (
    BillingSummary,
    DashboardCard,
    LoginOption,
    NavItem,
    Permission,
    PluginInfo,
    PluginRoutes,
    UsageMetric,
)
from core.guards import requires
from core.rendering import render

CALLS: dict[str, int] = {}
EVENTS: list[Any] = []
API_TOKEN = "everything-test-token"


def _called(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@get("/", name="everything_page", guards=[requires("everything.view")])
async def everything_page(ctx: Ctx) -> Response[Any]:
    """A page of the plugin, rendered from the plugin's own template."""
    return await render(ctx, "everything/page.html", message="Hello from the everything plugin")


@get("/ping", name="everything_api_ping", guards=[requires("everything.view")])
async def everything_api_ping(ctx: Ctx) -> dict[str, str]:
    """A trivial API route (authenticated by ``portal_authenticate_api`` below)."""
    assert ctx.organization is not None
    return {"organization": ctx.organization.slug, "actor": ctx.actor.display}


@get("/everything-public", name="everything_public")
async def everything_public(ctx: Ctx) -> Response[str]:
    """A public route at the host root (like an invitation link)."""
    return Response(f"public page of {ctx.tenant.product_name}", media_type="text/plain")


@hookimpl
def portal_plugin() -> PluginInfo:
    _called("portal_plugin")
    return PluginInfo("everything", "Everything", "1.0.0", "Implements every hook (tests)")


@hookimpl
def portal_permissions() -> list[Permission]:
    _called("portal_permissions")
    return [Permission("everything.view", "See the everything section", default_roles=("admin", "member"))]


@hookimpl
def portal_routes() -> PluginRoutes:
    _called("portal_routes")
    return PluginRoutes(pages=[everything_page], api=[everything_api_ping], public=[everything_public])


@hookimpl
def portal_nav_items(ctx: Any) -> list[NavItem]:
    _called("portal_nav_items")
    return [NavItem("Everything", "/o/{org}/everything", "everything.view", order=90)]


@hookimpl
def portal_template_dirs() -> list[Path]:
    _called("portal_template_dirs")
    return [Path(__file__).parent / "everything_templates"]


@hookimpl
def portal_static_dirs() -> list[Path]:
    _called("portal_static_dirs")
    return [Path(__file__).parent / "everything_templates"]


@hookimpl
def portal_piccolo_apps() -> list[str]:
    _called("portal_piccolo_apps")
    return []


@hookimpl
def portal_dashboard_cards(ctx: Any) -> list[DashboardCard]:
    _called("portal_dashboard_cards")
    return [DashboardCard("Everything card", value="42", description="from the everything plugin",
                          permission="everything.view")]


@hookimpl
async def portal_usage_metrics(ctx: Any, org: Any) -> list[UsageMetric]:
    _called("portal_usage_metrics")
    return [UsageMetric("widgets", "Widgets", used=3, limit=10)]


@hookimpl
async def portal_event(event: Any) -> None:
    _called("portal_event")
    EVENTS.append(event)


@hookimpl
def portal_cli(group: click.Group) -> None:
    _called("portal_cli")

    @group.command("everything-hello")
    def everything_hello() -> None:
        """Say hello (a plugin's CLI command)."""
        click.echo("hello from everything")


@hookimpl
async def portal_seed_demo(ctx: Any, org: Any) -> None:
    _called("portal_seed_demo")


@hookimpl
async def portal_startup(app: Any) -> None:
    _called("portal_startup")


@hookimpl
async def portal_shutdown(app: Any) -> None:
    _called("portal_shutdown")


@hookimpl
def portal_outbox_handlers() -> dict[str, Any]:
    _called("portal_outbox_handlers")

    async def deliver(payload: dict[str, Any], **_: Any) -> None:
        EVENTS.append(("outbox", payload))

    return {"everything.deliver": deliver}


@hookimpl
async def portal_authenticate_api(ctx: Any, authorization: str) -> ApiPrincipal | None:
    _called("portal_authenticate_api")
    if authorization != f"Bearer {API_TOKEN}":
        return None
    from core.tables import Organization

    org = await Organization.select().where(Organization.tenant == ctx.tenant.id).first()
    return ApiPrincipal(Actor("api_key", "k1", "test key"), CurrentOrganization(org["id"], org["slug"], org["name"]),
                        frozenset({"everything.view"}))


@hookimpl
def portal_admin_nav_items(ctx: Any) -> list[NavItem]:
    _called("portal_admin_nav_items")
    return [NavItem("Everything admin", "/everything-public", order=95)]


@hookimpl
async def portal_plan_limits(ctx: Any, org: Any) -> dict[str, float]:
    _called("portal_plan_limits")
    return {"seats": 5}


@hookimpl
def portal_login_options(ctx: Any) -> list[LoginOption]:
    _called("portal_login_options")
    return [LoginOption("Continue with Everything ID", "/everything-public")]


@hookimpl
async def portal_password_login_policy(ctx: Any, email: str) -> str | None:
    _called("portal_password_login_policy")
    if email.startswith("sso-only@"):
        return "Your company requires single sign-on. Use Continue with Everything ID."
    return None


@hookimpl
async def portal_billing_summaries(ctx: Any, orgs: list[Any]) -> dict[Any, BillingSummary]:
    _called("portal_billing_summaries")
    return {org.id: BillingSummary("basic", "Basic", "active", "EUR", Decimal("10"), "month", Decimal("10"))
            for org in orgs}


@hookimpl
async def portal_plan_change_allowed(ctx: Any, org: Any, current_plan: Any, new_plan: Any) -> str | None:
    _called("portal_plan_change_allowed")
    return "Not this one." if new_plan.id == "forbidden" else None


@hookimpl
async def portal_report_metered_usage(ctx: Any, org: Any, events: list[Any]) -> int:
    _called("portal_report_metered_usage")
    return len(events)
