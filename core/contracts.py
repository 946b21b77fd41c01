"""The values plugins hand to the core through hooks.

Plain frozen dataclasses so a partner's plugin needs nothing but ``core`` to
build them, and the core can validate them in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ROLES: tuple[str, ...] = ("owner", "admin", "billing", "member", "viewer")
"""Organization roles, highest first: a role never grants one above its own."""


@dataclass(frozen=True)
class PluginInfo:
    """Who a plugin is. ``requires_portal`` is a version specifier checked at registration."""

    slug: str
    label: str
    version: str
    description: str = ""
    requires_portal: str = ">=0.1,<1"


@dataclass(frozen=True)
class Permission:
    """A permission a plugin contributes; ``default_roles`` get it unless the tenant says otherwise."""

    name: str
    label: str
    default_roles: frozenset[str] = frozenset()

    def __init__(self, name: str, label: str, default_roles: Iterable[str] = ()) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "label", label)
        roles = frozenset(default_roles)
        unknown = roles - set(ROLES)
        if unknown:
            raise ValueError(f"permission {name}: unknown roles {sorted(unknown)}")
        object.__setattr__(self, "default_roles", roles)


@dataclass(frozen=True)
class NavItem:
    """A navigation link; ``href`` may contain ``{org}`` for the current organization's slug."""

    label: str
    href: str
    permission: str | None = None
    order: int = 100
    icon: str = ""


@dataclass(frozen=True)
class DashboardCard:
    """A card on the organization overview: a headline value or a template of the plugin."""

    title: str
    value: str = ""
    description: str = ""
    link: str = ""
    link_label: str = ""
    template: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    permission: str | None = None
    order: int = 100


@dataclass(frozen=True)
class UsageMetric:
    """A metered quantity for the current period; ``limit`` -1 means unlimited, None means no limit set."""

    key: str
    label: str
    used: float
    limit: float | None = None
    unit: str = ""


@dataclass(frozen=True)
class PluginRoutes:
    """A plugin's handlers: ``pages`` under ``/o/{org}/{slug}``, ``api`` under ``/api/v1/{slug}``,
    ``public`` at the host root (invitation links, webhooks, SSO callbacks)."""

    pages: list[Any] = field(default_factory=list)
    api: list[Any] = field(default_factory=list)
    public: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class LoginOption:
    """Another way to sign in, shown under the login form."""

    label: str
    href: str


OutboxHandler = Callable[..., Any]
"""``async def handler(message_payload: dict, *, tenant_id, app) -> None``; raise to retry later."""
