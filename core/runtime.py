"""Everything one app instance owns: settings, plugins, tenant directory, themes, throttles.

Lives on ``app.state.portal``; nothing here is a module global, so two apps in
one process (tests) never share plugins, caches or limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.contracts import Permission
from core.plugins import PluginHost, role_permissions
from core.ratelimit import Throttle, Throttles
from core.security import Passwords, SecretBox
from core.settings import Settings
from core.tenancy import TenantDirectory, TenantRecord
from core.themes import ThemeRegistry


@dataclass
class PortalRuntime:
    """The per-app services handlers reach through ``ctx.runtime``."""

    settings: Settings
    plugins: PluginHost
    themes: ThemeRegistry
    directory: TenantDirectory
    passwords: Passwords
    secrets: SecretBox
    permissions_by_plugin: dict[str, list[Permission]]
    throttles: Throttles = field(default_factory=Throttles)
    outbox_handlers: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def limiter(self, name: str, limit: int, window: float) -> Throttle:
        """The app's named throttle, shared by every process when ``PORTAL_REDIS_URL`` is set."""
        return self.throttles.get(name, limit, window)

    @property
    def login_by_account(self) -> Throttle:
        """Failed sign-ins per account: 5 in 15 minutes."""
        return self.limiter("login_by_account", 5, 15 * 60)

    @property
    def login_by_address(self) -> Throttle:
        """Failed sign-ins per client address: 30 in 15 minutes."""
        return self.limiter("login_by_address", 30, 15 * 60)

    def tenant_permissions(self, tenant: TenantRecord | None) -> list[Permission]:
        """Permissions that exist on a tenant: those of its enabled plugins."""
        enabled = self.plugins.enabled_for(tenant)
        return [p for slug, perms in self.permissions_by_plugin.items() if slug in enabled for p in perms]

    def permissions_for_role(self, tenant: TenantRecord, role: str) -> frozenset[str]:
        """What ``role`` may do on ``tenant`` (tenant overrides in ``settings.roles`` add or remove)."""
        granted = set(role_permissions(role, self.tenant_permissions(tenant)))
        overrides = tenant.settings.get("roles", {}).get(role, {})
        existing = {p.name for p in self.tenant_permissions(tenant)}
        granted |= set(overrides.get("grant", [])) & existing
        granted -= set(overrides.get("revoke", [])) if role != "owner" else set()
        return frozenset(granted)
