"""The plugin host: one pluggy ``PluginManager`` per app, never a module global.

Built-in plugins are imported by module name from the settings (the core has no
static import of any plugin); third-party plugins come from the entry point
group ``portal.plugins``, restricted by ``PORTAL_PLUGINS`` when set. Request-time
hooks are called one implementation at a time so that a plugin disabled for the
tenant is not reached and a plugin that raises is logged and skipped.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from core import PROJECT_NAME, __version__, hookspecs
from core.contracts import ROLES, NavItem, Permission, PluginInfo, PluginRoutes

log = logging.getLogger("portal.plugins")

ENTRY_POINT_GROUP = "portal.plugins"
CORE_SLUG = "core"


class PluginError(RuntimeError):
    """A plugin cannot be loaded: bad metadata, incompatible version, misspelled hook."""


@dataclass(frozen=True)
class LoadedPlugin:
    """A registered plugin and where it came from (``builtin``, ``entrypoint`` or ``test``)."""

    info: PluginInfo
    module: Any
    source: str


class PluginHost:
    """Registers plugins, answers which are enabled for a tenant and calls their hooks safely."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, LoadedPlugin] = {}

    # -- registration ---------------------------------------------------------------------------

    def register(self, plugin: ModuleType | object, source: str = "test") -> PluginInfo:
        """Register a module or object with ``portal_*`` hook implementations under its slug."""
        describe = getattr(plugin, "portal_plugin", None)
        if describe is None:
            raise PluginError(f"{_name_of(plugin)}: has no portal_plugin() hook saying who it is")
        info = describe()
        if not isinstance(info, PluginInfo):
            raise PluginError(f"{_name_of(plugin)}: portal_plugin() must return core.contracts.PluginInfo")
        _check_compatible(info)
        if info.slug in self.plugins:
            raise PluginError(f"plugin slug {info.slug!r} is registered twice")
        self.pm.register(plugin, name=info.slug)
        self.plugins[info.slug] = LoadedPlugin(info, plugin, source)
        return info

    def unregister(self, slug: str) -> None:
        """Remove a plugin (tests register throwaway plugins and take them out again)."""
        loaded = self.plugins.pop(slug)
        self.pm.unregister(loaded.module)

    def load_builtins(self, module_names: Iterable[str]) -> None:
        """Import and register the core's own sections by module name."""
        for name in module_names:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:
                    log.info("built-in plugin %s is not installed; skipped", name)
                    continue
                raise
            self.register(module, source="builtin")

    def load_entry_points(self, allowlist: tuple[str, ...] | None) -> None:
        """Register installed third-party plugins; ``allowlist`` (entry point names) restricts them."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if allowlist is not None and entry.name not in allowlist:
                log.info("plugin %s is installed but not in PORTAL_PLUGINS; skipped", entry.name)
                continue
            if any(p.module is entry.load() for p in self.plugins.values()):
                continue
            self.register(entry.load(), source="entrypoint")

    def check(self) -> None:
        """Fail loudly on a ``portal_*`` function that matches no hook (a misspelling)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from None
        for slug, loaded in self.plugins.items():
            for name in dir(loaded.module):
                if name.startswith("portal_") and name not in hookspecs.HOOK_NAMES:
                    raise PluginError(f"plugin {slug}: {name} is not a Portal hook (misspelled?)")

    # -- per-tenant enablement -----------------------------------------------------------------

    def enabled_for(self, tenant: Any | None) -> frozenset[str]:
        """Slugs of the plugins a tenant has switched on (the core is always on)."""
        if tenant is None:
            return frozenset(self.plugins)
        wanted = tenant.plugins
        if wanted is None:
            wanted = {slug for slug, p in self.plugins.items() if p.source == "builtin"}
        return frozenset(slug for slug in self.plugins if slug == CORE_SLUG or slug in wanted)

    def is_enabled(self, slug: str, tenant: Any | None) -> bool:
        """Whether a plugin's routes, links and permissions exist on this tenant's hosts."""
        return slug in self.enabled_for(tenant)

    # -- calling hooks ---------------------------------------------------------------------------

    def _impls(self, hook_name: str, enabled: frozenset[str] | None) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook_name)
        impls = list(reversed(caller.get_hookimpls()))  # pluggy order: last registered first
        if enabled is None:
            return impls
        return [impl for impl in impls if impl.plugin_name in enabled]

    def call_build(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a build-time hook on every registered plugin; errors propagate (start-up fails)."""
        results = []
        for impl in self._impls(hook_name, None):
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            if inspect.isawaitable(result):
                raise PluginError(f"plugin {impl.plugin_name}: {hook_name} is a build-time hook; make it sync")
            if result is not None:
                results.append((impl.plugin_name, result))
        return results

    async def call(self, hook_name: str, *, tenant: Any | None, strict: bool = False,
                   **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a request-time hook on the plugins enabled for ``tenant``.

        Returns ``(slug, result)`` pairs, skipping ``None`` (only the first for a
        ``firstresult`` hook). A raising implementation is logged and skipped unless
        ``strict`` (events, authentication: the request must fail with it).
        """
        results = []
        spec = getattr(self.pm.hook, hook_name).spec
        first_only = bool(spec and spec.opts.get("firstresult"))
        for impl in self._impls(hook_name, self.enabled_for(tenant)):
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                if strict:
                    raise
                log.exception("plugin %s failed in %s; skipped", impl.plugin_name, hook_name)
                continue
            if result is not None:
                results.append((impl.plugin_name, result))
                if first_only:
                    break
        return results

    async def first(self, hook_name: str, *, tenant: Any | None, **kwargs: Any) -> Any:
        """The first non-``None`` result of a ``firstresult`` hook, or ``None``."""
        results = await self.call(hook_name, tenant=tenant, **kwargs)
        return results[0][1] if results else None

    # -- build-time collections ------------------------------------------------------------------

    def permissions_by_plugin(self) -> dict[str, list[Permission]]:
        """Every plugin's permissions, keyed by plugin slug."""
        return {slug: list(perms) for slug, perms in self.call_build("portal_permissions")}

    def routes_by_plugin(self) -> dict[str, PluginRoutes]:
        """Every plugin's handlers, normalised to ``PluginRoutes``."""
        routes = {}
        for slug, value in self.call_build("portal_routes"):
            routes[slug] = value if isinstance(value, PluginRoutes) else PluginRoutes(pages=list(value))
        return routes

    def paths(self, hook_name: str) -> list[tuple[str, Path]]:
        """Folders from ``portal_template_dirs`` / ``portal_static_dirs``, with their plugin."""
        return [(slug, Path(p)) for slug, dirs in self.call_build(hook_name) for p in dirs]


def role_permissions(role: str, permissions: Iterable[Permission]) -> frozenset[str]:
    """The permission names a role holds: owners hold all; others what names their role."""
    if role not in ROLES:
        return frozenset()
    if role == "owner":
        return frozenset(p.name for p in permissions)
    return frozenset(p.name for p in permissions if role in p.default_roles)


def visible_nav(items: Iterable[NavItem], can: Any, org_slug: str) -> list[NavItem]:
    """Nav items the user may follow, in order, with ``{org}`` filled in."""
    shown = [item for item in items if item.permission is None or can(item.permission)]
    shown.sort(key=lambda item: (item.order, item.label))
    return [NavItem(i.label, i.href.replace("{org}", org_slug), i.permission, i.order, i.icon) for i in shown]


def _check_compatible(info: PluginInfo) -> None:
    try:
        spec = SpecifierSet(info.requires_portal)
    except InvalidSpecifier:
        raise PluginError(f"plugin {info.slug}: requires_portal {info.requires_portal!r} is not valid") from None
    if Version(__version__) not in spec:
        raise PluginError(
            f"plugin {info.slug} {info.version} needs portal {info.requires_portal}; this is portal {__version__}"
        )


def _name_of(plugin: object) -> str:
    return getattr(plugin, "__name__", type(plugin).__name__)
