"""Audit log plugin (slug ``audit``): the table of contents.

Records every domain event (``portal_event``) as one row in the caller's transaction, chained by hash
per tenant; shows it at ``/o/{org}/audit`` (``audit.read``) and ``/admin/audit`` (tenant admins);
``portal audit verify|head|prune`` on the command line. See ``service.py`` (recording), ``chain.py``
(verification and retention), ``query.py`` (viewer and export queries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import hookimpl
from core.contracts import NavItem, Permission, PluginInfo, PluginRoutes

HERE = Path(__file__).parent


@hookimpl
def portal_plugin() -> PluginInfo:
    """Who this plugin is."""
    return PluginInfo("audit", "Audit log", "1.0.0", "Append-only, tamper-evident record of every change.")


@hookimpl
def portal_permissions() -> list[Permission]:
    """Reading the log shows every member's actions and addresses: owners and admins only, by default."""
    return [Permission("audit.read", "See and export the audit log", default_roles=("owner", "admin"))]


@hookimpl
def portal_routes() -> PluginRoutes:
    """The organization's viewer and exports; the tenant-wide viewer for tenant admins at ``/admin/audit``."""
    from plugins.audit.routes import PAGES, PUBLIC

    return PluginRoutes(pages=PAGES, public=PUBLIC)


@hookimpl
def portal_nav_items(ctx: Any) -> list[NavItem]:
    """"Audit log" near the end of the navigation, for those who may read it."""
    return [NavItem("Audit log", "/o/{org}/audit", "audit.read", order=90, icon="shield")]


@hookimpl
def portal_admin_nav_items(ctx: Any) -> list[NavItem]:
    """The tenant-wide log in the reseller console."""
    return [NavItem("Audit log", "/admin/audit", order=60)]


@hookimpl
def portal_template_dirs() -> list[Path]:
    """``templates/audit/...``."""
    return [HERE / "templates"]


@hookimpl
def portal_static_dirs() -> list[Path]:
    """The viewer's stylesheet."""
    return [HERE / "static"]


@hookimpl
def portal_piccolo_apps() -> list[str]:
    """The audit table, its indexes and its append-only triggers."""
    return ["plugins.audit.piccolo_app"]


@hookimpl
async def portal_event(event: Any) -> None:
    """One row per event, in the caller's transaction: if this insert fails, the change fails with it."""
    from plugins.audit.service import record

    await record(event)


@hookimpl
def portal_cli(group: Any) -> None:
    """``portal audit verify | head | prune``."""
    from plugins.audit.cli import add_commands

    add_commands(group)


@hookimpl
async def portal_seed_demo(ctx: Any, org: Any) -> None:
    """A short, realistic history for a demo organization (once: skipped when it already has entries)."""
    from plugins.audit.demo import seed_demo

    await seed_demo(ctx, org)
