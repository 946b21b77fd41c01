"""Enterprise SSO: OIDC and SAML per organization, verified domains, JIT provisioning (hooks only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import hookimpl
from core.context import RequestContext
from core.contracts import LoginOption, NavItem, Permission, PluginInfo, PluginRoutes


@hookimpl
def portal_plugin() -> PluginInfo:
    """The plugin is ``sso``: its pages live at ``/o/{org}/sso``."""
    return PluginInfo("sso", "Single sign-on", "0.1.0", "OIDC and SAML sign-in per organization.")


@hookimpl
def portal_piccolo_apps() -> list[str]:
    """Connections, domains, pending sign-ins and the replay cache."""
    return ["plugins.sso.piccolo_app"]


@hookimpl
def portal_template_dirs() -> list[Path]:
    """Templates under ``templates/sso``."""
    return [Path(__file__).parent / "templates"]


@hookimpl
def portal_permissions() -> list[Permission]:
    """Owners and admins configure their organization's SSO."""
    return [Permission("sso.manage", "Configure single sign-on", default_roles=("owner", "admin"))]


@hookimpl
def portal_routes() -> PluginRoutes:
    """The configuration page under ``/o/{org}/sso``; sign-in routes under ``/sso/`` on the tenant host."""
    from plugins.sso.routes import PAGE_HANDLERS, PUBLIC_HANDLERS

    return PluginRoutes(pages=PAGE_HANDLERS, public=PUBLIC_HANDLERS)


@hookimpl
def portal_nav_items(ctx: RequestContext) -> list[NavItem]:
    """"Single sign-on" in the organization's navigation for those who may configure it."""
    return [NavItem("Single sign-on", "/o/{org}/sso", "sso.manage", order=80, icon="key")]


@hookimpl
def portal_login_options(ctx: RequestContext) -> list[LoginOption]:
    """"Continue with SSO" under the login form."""
    return [LoginOption("Continue with SSO", "/sso/start")]


@hookimpl
async def portal_password_login_policy(ctx: RequestContext, email: str) -> str | None:
    """Refuse passwords for verified domains whose organization requires SSO (owners excepted: break-glass)."""
    from plugins.sso.service import password_refusal

    return await password_refusal(ctx, email)


@hookimpl
async def portal_seed_demo(ctx: RequestContext, org: Any) -> None:
    """A claimed, not yet verified company domain, so the demo page shows the DNS step (idempotent)."""
    from plugins.sso.service import seed_demo

    await seed_demo(ctx, org)
