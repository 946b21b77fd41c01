"""Everything one app instance owns: settings, plugins, tenant directory, themes, throttles.

Lives on ``app.state.portal``; nothing here is a module global, so two apps in
one process (tests) never share plugins, caches or limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.contracts import Permission
from core.plugins import PluginHost, role_permissions
from core.security import Passwords, SecretBox, SlidingWindowLimiter
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
    login_by_account: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(5, 15 * 60))
    login_by_address: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(30, 15 * 60))
    outbox_handlers: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def limiter(self, name: str, limit: int, window: float) -> SlidingWindowLimiter:
        """The app's named throttle (created on first use): one place to move them all to Redis later."""
        limiter = self.state.get(name)
        if limiter is None:
            limiter = self.state[name] = SlidingWindowLimiter(limit, window)
        return limiter

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
