"""Migrations of the core and of every plugin's Piccolo apps (``portal migrate``)."""

from __future__ import annotations

from piccolo.conf.apps import AppRegistry

from core.plugins import PluginHost
from core.settings import Settings, load_settings


def app_modules(settings: Settings | None = None, host: PluginHost | None = None) -> list[str]:
    """The core's ``piccolo_app`` module first, then each plugin's (``portal_piccolo_apps``)."""
    from core.app import build_plugin_host

    host = host or build_plugin_host(settings or load_settings())
    modules = ["core.piccolo_app", "core.console.piccolo_app"]
    for _slug, apps in host.call_build("portal_piccolo_apps"):
        modules.extend(str(app) for app in apps)
    return modules


_migrating: Settings | None = None  # settings of the migration in progress (Piccolo asks core.piccolo_conf)


def app_registry(settings: Settings | None = None) -> AppRegistry:
    """Piccolo's ``AppRegistry`` for the core and every plugin (used by ``core.piccolo_conf``)."""
    return AppRegistry(apps=app_modules(settings or _migrating))


async def migrate_all(settings: Settings | None = None) -> list[str]:
    """Apply every pending migration of the core and of the plugins ``settings`` load."""
    global _migrating
    from piccolo.apps.migrations.commands.forwards import run_forwards

    _migrating = settings
    try:
        result = await run_forwards(app_name="all", migration_id="all")
    finally:
        _migrating = None
    if not result.success:
        raise RuntimeError(result.message)
    return [result.message] if result.message else []
